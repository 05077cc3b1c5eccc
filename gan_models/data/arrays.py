"""Arrays on disk and the preparation helpers: content hash, split, resize, ``.npz`` files."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from .base import DataError


def resize_images(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear, antialiased resize of uint8 (N, C, H, W) to (N, C, size, size)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x).float()
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round().clamp_(0, 255).to(torch.uint8).numpy()


def split_indices(n: int, heldout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic (train, held-out) split of range(n), each part in shuffled order (so that
    consecutive splits, as the Inception score uses them, mix the classes)."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"prepare.heldout_fraction must be in (0, 1), got {heldout_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_held = max(1, int(round(n * heldout_fraction)))
    if n - n_held < 1:
        raise ValueError(f"{n} samples are too few to split with heldout_fraction={heldout_fraction}")
    return perm[n_held:], perm[:n_held]


def content_hash(*arrays: np.ndarray) -> str:
    """SHA-256 over dtype, shape and bytes of each array: the data version."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_arrays(path: str | Path, **arrays: np.ndarray) -> None:
    """np.savez to a temporary file, then an atomic rename."""
    import io

    from ..files import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Load an ``.npz`` without allowing pickled objects."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; run the prepare stage first (python -m flows prepare)")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as e:
        raise DataError(f"{path} is corrupt or truncated ({e}); rerun the prepare stage") from e


def value_range(x: np.ndarray) -> list[float]:
    return [float(x.min()), float(x.max())] if x.size else [math.nan, math.nan]
