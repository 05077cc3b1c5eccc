"""Prefect's server for this process: quiet settings, and a start that overlaps other work."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

from tasks.runtime import file_lock


def quiet_prefect() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    # Prefect waits 20 s for its temporary server; a first start on a fresh install (bytecode
    # compilation, database migration) on a busy 2-core machine takes longer than that.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def start_prefect() -> None:
    """Start Prefect's temporary server (when no PREFECT_API_URL is set) under a lock in
    PREFECT_HOME: two runs starting at once would otherwise race in its database migration."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_HOME

    with file_lock(Path(PREFECT_HOME.value()) / ".gan-pipeline-start.lock"):
        with get_client(sync_client=True) as client:
            client.hello()


class Background:
    """``fn()`` on a daemon thread; ``result()`` waits for it and re-raises what it raised."""

    def __init__(self, fn: Callable[[], Any]):
        self._out: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(fn,), name=f"background-{fn.__name__}", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller of result()
            self._out["error"] = e

    def join(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if "error" in self._out:
            raise self._out["error"]
        return self._out.get("value")
