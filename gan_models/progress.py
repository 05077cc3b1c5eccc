"""Progress of every step that can take longer than a few seconds: a bar with rate and time left on
a terminal, the same as a log line every ``every_s`` seconds otherwise (a log file, CI, a Prefect
worker), so nobody watches a silent process."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("gan_models.progress")


class _Lines:
    """The non-terminal form of a progress bar: "desc: 1,200/45,000 img (2.7%), 410 img/s, 1 min 47 s left"."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int, every_s: float):
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.n, self.start_n = initial, initial
        self.t0 = self.last = time.monotonic()

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        done = self.n - self.start_n
        rate = done / max(now - self.t0, 1e-9)
        text = f"{self.desc}: {self.n:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"
        if self.total:
            text += f" ({100 * self.n / self.total:.1f}%)"
        text += f", {rate:,.1f} {self.unit}/s"
        if self.total and rate > 0:
            left = (self.total - self.n) / rate
            text += f", {int(left // 60)} min {int(left % 60)} s left" if left >= 60 else f", {left:.0f} s left"
        return text

    def set_postfix(self, *_: Any, **__: Any) -> None:
        pass

    def close(self) -> None:
        if self.n > self.start_n:
            log.info("%s (done in %.1f s)", self.line(time.monotonic()), time.monotonic() - self.t0)

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Off(_Lines):
    def update(self, k: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int | None, desc: str, unit: str = "it", *, enabled: bool = True, initial: int = 0,
             position: int | None = None, every_s: float = 10.0):
    """A progress bar (``update(k)``, ``set_postfix``, ``close``; a context manager): tqdm's on a
    terminal, log lines every ``every_s`` seconds elsewhere, nothing when not ``enabled``."""
    if not enabled:
        return _Off(total, desc, unit, initial, every_s)
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, position=position, dynamic_ncols=True,
                    mininterval=0.5, leave=True, unit_scale=unit != "it")
    return _Lines(total, desc, unit, initial, every_s)
