"""Process settings that make CPU training faster without changing its results.

glibc's ``malloc`` serves large blocks (from 128 KiB, a threshold it raises and lowers as the
program frees memory) with fresh ``mmap`` pages and unmaps them on ``free``.  A training step
allocates and frees its activation and gradient buffers every time, so every step touched
thousands of new pages: about 2,500 minor page faults per DCGAN step here, each page zeroed by
the kernel, and a speed that depended on the process's allocation history (the same loop ran
at 26-34 steps/s in different processes).  With a fixed, high mmap threshold and no trimming,
freed buffers stay in the heap and are reused: 1 fault per step and 1.1-1.3x the steps per
second (``benchmarks/speedups.py``).  The price is that the process keeps its peak heap until
it exits, which a training or evaluation stage does anyway.

Results do not change: tensors keep torch's 64-byte alignment wherever their memory comes from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3

_applied: bool | None = None


def keep_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Serve blocks below ``mmap_threshold`` bytes from the heap and return heap memory to the
    OS only when more than ``trim_threshold`` bytes are free at its top.  Linux with glibc only;
    elsewhere (or if glibc refuses) nothing changes.  Returns whether the settings are in force.
    Idempotent: later calls return the first call's outcome."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    return _applied
