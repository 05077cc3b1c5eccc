"""Arrays on disk and the preparation helpers: content hash, split, resize, ``.npz`` files."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from ..mapped import release, take_rows
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


CHUNK_BYTES = 64 << 20  # arrays are read, hashed and copied in pieces of about this size


def row_chunks(a: np.ndarray, chunk_bytes: int = CHUNK_BYTES):
    """(start, stop) of consecutive row ranges of about ``chunk_bytes`` each."""
    per_row = max(1, a[:1].nbytes) if len(a) else 1
    step = max(1, chunk_bytes // per_row)
    return [(i, min(i + step, len(a))) for i in range(0, len(a), step)]


def content_hash(*arrays: np.ndarray) -> str:
    """SHA-256 over dtype, shape and bytes of each array: the data version.  Read in pieces, so a
    memory-mapped array larger than memory hashes too (to the digest of its bytes in one piece)."""
    h = hashlib.sha256()
    for a in arrays:
        if a.ndim == 0:
            a = a.reshape(1)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        for i, j in row_chunks(a):
            h.update(np.ascontiguousarray(a[i:j]).tobytes())
            release(a)
    return h.hexdigest()


def write_rows(path: str | Path, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """``x[rows]`` (all of ``x`` when ``rows`` is None) written to the ``.npy`` file ``path`` in
    pieces, never whole in memory; returns the file memory-mapped (copy-on-write: writes to the
    returned array never reach the file)."""
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    out = np.lib.format.open_memmap(str(path), mode="w+", dtype=x.dtype, shape=(len(rows), *x.shape[1:]))
    for i, j in row_chunks(out):
        out[i:j] = take_rows(x, rows[i:j])
        release(out)
    out.flush()
    del out
    return load_rows(path)


def load_rows(path: str | Path) -> np.ndarray:
    """A ``.npy`` array memory-mapped, copy-on-write (what every stage reads images as)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; run the prepare stage first (python -m flows prepare)")
    try:
        return np.load(path, mmap_mode="c", allow_pickle=False)
    except Exception as e:
        raise DataError(f"{path} is corrupt or truncated ({e}); rerun the prepare stage") from e


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


def value_range(*arrays: np.ndarray) -> list[float]:
    """[min, max] over the values of all ``arrays`` (read in pieces); NaN when they are empty."""
    lo, hi = math.inf, -math.inf
    for a in arrays:
        for i, j in row_chunks(a):
            if j > i and a[i:j].size:
                lo, hi = min(lo, float(a[i:j].min())), max(hi, float(a[i:j].max()))
            release(a)
    return [lo, hi] if lo <= hi else [math.nan, math.nan]
