"""The machine a stage runs on: its device, its CPU threads, and the locks that keep two runs
from sharing a project folder."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import torch

from gan_models.runtime import keep_freed_memory


def resolve_device(name: str) -> torch.device:
    """The torch device ``device:`` names; ``cuda`` and ``auto`` on a GPU machine are ``cuda:N`` of
    the current device, so that one card has one name (in fingerprints and records)."""
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} but no CUDA device is available; use cpu or auto")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def resolved_threads(threads: int | None, parallel: int) -> int:
    return threads or max(1, (os.cpu_count() or 1) // max(1, parallel))


def configure_threads(threads: int | None, parallel: int) -> int:
    """Set torch's CPU threads: ``threads``, else cores // parallel.  Every stage calls this with
    the same settings whichever path runs it, because convolution results on the CPU depend on the
    thread count, and a DVC rerun must reproduce a Prefect run bit for bit.  Also keeps freed
    tensor memory in the process (``gan_models.runtime``): faster steps, the same results."""
    keep_freed_memory()
    n = resolved_threads(threads, parallel)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


class RunLockedError(RuntimeError):
    """Another pipeline run holds this project folder."""


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[int]:
    """An exclusive ``fcntl.flock`` on ``path`` (created if needed), held for the ``with`` block;
    yields the file descriptor.  The OS releases it when the process dies, so a killed process
    never leaves it stale.  Non-blocking: raises BlockingIOError when another process holds it."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def project_lock(root: Path = Path(".")) -> Iterator[None]:
    """``<root>/.pipeline.lock``, held for a whole ``flows run``: a second run in the same folder
    is refused at once, naming the holder's pid."""
    path = Path(root) / ".pipeline.lock"
    try:
        with file_lock(path, blocking=False) as fd:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
    except BlockingIOError:
        holder = path.read_text(errors="replace").strip() or "unknown"
        raise RunLockedError(f"another pipeline run (pid {holder}) is using {path.parent.resolve()}; "
                             "wait for it to finish, or run in a separate clone") from None
