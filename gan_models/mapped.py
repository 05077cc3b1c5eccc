"""Memory-mapped arrays: their pages given back to the operating system, and image files decoded
straight into their rows by worker processes.

Only numpy and Pillow are imported here, never torch: a decoding worker (a spawned process that
imports this module) then costs tens of MB, not the half GB of a torch import.
"""

from __future__ import annotations

import mmap
import os

import numpy as np


class UnreadableImage(ValueError):
    """An image file that cannot be decoded (the message names it); the data loader turns it into
    its own error."""


def release(*arrays: np.ndarray) -> None:
    """Give the pages of memory-mapped ``arrays`` back to the operating system (they are read again
    from the file when next touched; written ones are flushed first).  A pass over an array larger
    than memory calls it after each piece, so that only the piece in hand stays resident: the
    process's memory does not grow with the data."""
    for a in arrays:
        mm = getattr(a, "_mmap", None)  # a numpy memmap (or a slice of one) owns its mapping here
        if mm is None or not hasattr(mm, "madvise"):
            continue
        if a.flags.writeable and getattr(a, "mode", "c") in ("r+", "w+"):
            a.flush()
        mm.madvise(mmap.MADV_DONTNEED)


def take_rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``x[rows]`` for integer ``rows``.  From a memory-mapped ``.npy`` file the rows are read from
    the file (``preadv``), not through the mapping: on recent kernels a page fault maps a whole
    large folio of the page cache (up to 2 MB), so a random gather through the mapping left most of
    a freshly written file resident in the process (2.4 GB of a 2.5 GB file, measured).  The same
    values either way."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    whole = (isinstance(x, np.memmap) and isinstance(x.base, mmap.mmap) and x.flags.c_contiguous
             and getattr(x, "filename", None) and (len(rows) == 0 or (rows.min() >= 0 and rows.max() < len(x))))
    if not whole or not hasattr(os, "preadv"):  # in memory, a slice of a map, indices to check, or
        return x[rows]                            # no preadv (Windows): numpy's own indexing
    out = np.empty((len(rows), *x.shape[1:]), dtype=x.dtype)
    row_bytes = out[:1].nbytes
    view = memoryview(out.reshape(-1).view(np.uint8))
    fd = os.open(x.filename, os.O_RDONLY)
    try:
        for k, r in enumerate(rows.tolist()):
            if os.preadv(fd, [view[k * row_bytes:(k + 1) * row_bytes]], x.offset + r * row_bytes) != row_bytes:
                raise OSError(f"{x.filename}: short read at row {r}; the file is truncated")
    finally:
        os.close(fd)
    return out


def _unreadable(path: str, e: Exception) -> UnreadableImage:
    return UnreadableImage(f"cannot read image {path!r}: {e}; remove or fix the file")


def scan_images(files: list[str]) -> tuple[list[str], tuple[int, int] | None]:
    """The modes of ``files`` (headers only) and the first one's size."""
    from PIL import Image

    modes, size = [], None
    for i, p in enumerate(files):
        try:
            with Image.open(p) as im:
                modes.append(im.mode)
                size = im.size if i == 0 else size
        except OSError as e:  # also PIL's UnidentifiedImageError
            raise _unreadable(p, e) from None
    return modes, size


def decode_images(files: list[str], start: int, out: str | np.ndarray, channels: int, size: int) -> None:
    """Decode ``files`` into rows ``start...`` of ``out`` (an array, or the path of a .npy file that
    a worker process opens memory-mapped): converted to grey or RGB, resized (bicubic) to ``size``."""
    from PIL import Image

    rows = np.load(out, mmap_mode="r+") if isinstance(out, str) else out
    mode = "L" if channels == 1 else "RGB"
    for k, p in enumerate(files):
        try:
            with Image.open(p) as im:
                im = im.convert(mode)
        except OSError as e:
            raise _unreadable(p, e) from None
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        a = np.asarray(im, dtype=np.uint8)
        rows[start + k] = a[None] if channels == 1 else a.transpose(2, 0, 1)
        if k % 1000 == 999:
            release(rows)  # written pages to the file: memory does not grow with the folder
    release(rows)
