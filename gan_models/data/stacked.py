"""Stacked MNIST (Metz et al. 2017; VEEGAN; PacGAN): three digits as the three channels of one
image, 1,000 modes.  Built offline from the embedded MNIST subset."""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import split_indices
from .base import DATASETS, DataError, DataFacts, RawData
from .embedded import load_mnist_subset

STACKED_CHANNELS = 3
STACKED_HELDOUT = 0.1  # share of the source digits (and of the stacked images) held out


def stack_digits(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    """``n`` images whose channel c is a digit image of class ``digits[:, c]``: the classes are
    drawn uniformly and independently (so the true mode distribution is uniform over the 1,000
    labels), then an image of that class uniformly from ``x`` (N, 1, H, W).  Returns (images
    (n, 3, H, W) uint8, labels 100 * d0 + 10 * d1 + d2, digits (n, 3))."""
    by_class = [np.flatnonzero(y == k) for k in range(10)]
    missing = [k for k, idx in enumerate(by_class) if not len(idx)]
    if missing:
        raise DataError(f"stacked_mnist needs every digit among the source images; missing {missing}")
    digits = rng.integers(0, 10, (n, STACKED_CHANNELS))
    pick = np.empty_like(digits)
    for k in range(10):
        where = digits == k
        pick[where] = by_class[k][rng.integers(0, len(by_class[k]), int(where.sum()))]
    images = x[pick, 0]  # (n, 3, H, W): channel c from source image pick[:, c]
    return images, stacked_label(digits), digits


def stacked_label(digits: np.ndarray) -> np.ndarray:
    """The mode of each stacked image: its channels' digits read as a 3-digit number."""
    digits = np.asarray(digits, dtype=np.int64)
    return sum(digits[:, c] * 10 ** (STACKED_CHANNELS - 1 - c) for c in range(STACKED_CHANNELS))


def stacked_digits_of(labels: np.ndarray) -> np.ndarray:
    """The inverse of ``stacked_label``: (n,) modes -> (n, 3) digits."""
    labels = np.asarray(labels, dtype=np.int64)
    return np.stack([labels // 10 ** (STACKED_CHANNELS - 1 - c) % 10 for c in range(STACKED_CHANNELS)], 1)


def load_stacked_mnist(n_points: int = 20000, seed: int = 0, **_: Any) -> RawData:
    """``n_points`` stacked images (``prepare.n_points``).  The source digits are split first
    (90 / 10, seeded): training images stack training digits only and the held-out images
    (``STACKED_HELDOUT`` of ``n_points``) held-out digits only, so the held-out accuracy of the
    digit classifier that counts modes is measured on digits it never saw."""
    raw = load_mnist_subset()
    train_src, held_src = split_indices(len(raw.x), STACKED_HELDOUT, seed)
    rng = np.random.default_rng(seed)
    n_held = max(1, int(round(n_points * STACKED_HELDOUT)))
    if n_points - n_held < 1:
        raise DataError(f"prepare.n_points={n_points} is too few stacked images; use at least 10")
    tx, ty, _ = stack_digits(raw.x[train_src], raw.y[train_src], n_points - n_held, rng)
    hx, hy, _ = stack_digits(raw.x[held_src], raw.y[held_src], n_held, rng)
    classes = [f"{k:03d}" for k in range(10 ** STACKED_CHANNELS)]
    info = {"stacked": {"channels": STACKED_CHANNELS, "modes": 10 ** STACKED_CHANNELS, "mode_distribution": "uniform",
                        "label": "100 * digit(channel 0) + 10 * digit(channel 1) + digit(channel 2)",
                        "source_digits": {"train": int(len(train_src)), "heldout": int(len(held_src))}}}
    return RawData(tx, ty, "image", classes=classes, extra=info, held=RawData(hx, hy, "image", classes=classes))



DATASETS.register("stacked_mnist", load_stacked_mnist, "Stacked MNIST: 3 MNIST-subset digits as the channels of "
                  "one image, 1,000 modes (embedded, offline; prepare.n_points images)",
                  facts=DataFacts("image", (3, 28, 28), 1000, "n_points"))
