"""How a command ends: the errors every command may raise, and the exit code of each.

Exit codes: 0 success, 1 a stage failed while working, 2 bad settings or input (nothing was
done; the message names the key or path and what is allowed), 130 interrupted.
"""

from __future__ import annotations

import errno
from typing import Any


class PipelineFailed(RuntimeError):
    """Some variants failed; ``result`` holds what the others produced."""

    def __init__(self, message: str, result: dict[str, Any]):
        super().__init__(message)
        self.result = result


def outcome(e: BaseException) -> tuple[int, str] | None:
    """(exit code, message) a command ends with on ``e``; None for an error that is a bug (re-raised)."""
    from gan_models.checkpoint import CheckpointError
    from gan_models.data import DataError
    from tasks.config import ConfigError
    from tasks.reporting.compare import CompareError
    from tasks.reporting.tracking import TrackingError
    from tasks.runtime import RunLockedError

    if isinstance(e, (ConfigError, DataError, TrackingError, RunLockedError, CompareError)):
        return 2, f"error: {e}"
    if isinstance(e, PipelineFailed):
        return 1, f"error: the pipeline finished with failures: {e}"
    if isinstance(e, (CheckpointError, FileNotFoundError)):
        return 1, f"error: {e}"
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return 1, f"error: {e.strerror}"
    if isinstance(e, KeyboardInterrupt):
        return 130, "interrupted; rerun the same command to resume from the last checkpoint"
    return None
