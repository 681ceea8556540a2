"""Progress of long stages, reported to whoever listens.

Assets call :func:`report`. By default progress goes to the Dagster run log every few seconds;
the CLI installs a sink that draws a live progress bar (frames done, frames per second, ETA).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager

Sink = Callable[[str, int, int], None]
"""``sink(stage, done, total)``; ``total`` is 0 when unknown."""

_sinks: list[Sink] = []


@contextmanager
def progress_sink(sink: Sink):
    """Send progress reports to ``sink`` while the block runs."""
    _sinks.append(sink)
    try:
        yield sink
    finally:
        _sinks.remove(sink)


def reporter(stage: str, log: Callable[[str], None] | None = None, every_s: float = 5.0
             ) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback for one stage.

    It forwards every call to the installed sinks and, every ``every_s`` seconds, writes a line
    with frames done, frames per second and ETA to ``log`` (e.g. ``context.log.info``).
    """
    start = time.monotonic()
    last = [start]

    def progress(done: int, total: int) -> None:
        for sink in list(_sinks):
            sink(stage, done, total)
        now = time.monotonic()
        if log is not None and (now - last[0] >= every_s or (total and done >= total)):
            last[0] = now
            rate = done / max(now - start, 1e-9)
            eta = f", ETA {(total - done) / rate:.0f} s" if total and rate > 0 else ""
            log(f"{stage}: {done}/{total or '?'} ({rate:.1f}/s{eta})")

    return progress
