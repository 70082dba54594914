"""Run a job every interval (`streamrank train --every 6h`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def schedule(
    every_s: float,
    job: Callable[[], object],
    *,
    stop: threading.Event | None = None,
    max_runs: int | None = None,
) -> int:
    """Run `job` now and then every `every_s` seconds (from the start of the last run) until
    `stop` is set or `max_runs` ran; a failing run is logged and the next one still comes."""
    stop = stop or threading.Event()
    runs = 0
    while not stop.is_set() and (max_runs is None or runs < max_runs):
        started = time.monotonic()
        runs += 1
        try:
            job()
        except Exception:
            log.exception("scheduled run %d failed; next in %.0fs", runs, every_s)
        if max_runs is not None and runs >= max_runs:
            break
        stop.wait(max(0.0, every_s - (time.monotonic() - started)))
    return runs
