"""2D Gaussian mixtures (PacGAN protocol, Lin et al. 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import DATASETS, DataFacts, RawData


def mixture_centers(name: str) -> tuple[np.ndarray, float]:
    """Return (centres (K, 2), std) of a named mixture."""
    if name == "ring":  # 8 modes on the unit circle, std 0.01
        angles = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], 1), 0.01
    if name == "grid":  # 25 modes at {-4,-2,0,2,4}^2, std 0.05
        g = np.arange(-4, 5, 2, dtype=np.float64)
        return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2), 0.05
    raise ValueError(f"unknown mixture {name!r}; known: ring, grid")


def _mixture(name: str, n_points: int, seed: int) -> RawData:
    centers, std = mixture_centers(name)
    rng = np.random.default_rng(seed)
    mode = rng.integers(0, len(centers), n_points)
    x = centers[mode] + std * rng.standard_normal((n_points, 2))
    return RawData(x.astype(np.float32), mode.astype(np.int64), "points",
                   classes=[f"mode{i}" for i in range(len(centers))],
                   extra={"centers": centers.tolist(), "std": std})


def load_ring(n_points: int = 20000, seed: int = 0, **_: Any) -> RawData:
    return _mixture("ring", n_points, seed)


def load_grid(n_points: int = 20000, seed: int = 0, **_: Any) -> RawData:
    return _mixture("grid", n_points, seed)



DATASETS.register("ring", load_ring, "2D: 8 Gaussians on the unit circle, std 0.01 (PacGAN)",
                  facts=DataFacts("points", (2,), 8, "n_points"))
DATASETS.register("grid", load_grid, "2D: 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (PacGAN)",
                  facts=DataFacts("points", (2,), 25, "n_points"))
