"""Repeated log lines from the Kafka client libraries, said once and then summarised.

While the broker is away, aiokafka and Faust log every failed connection attempt (about 180
ERROR lines a second were seen): the one line that matters, what is wrong and what the worker
does about it, drowns. `RepeatLimiter` lets the first record of each message template through,
then at most one per `every_s` carrying how many like it were dropped in between; the
worker's BrokerWatch (streams/worker/broker_watch.py) says the outage itself, once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

# The libraries whose repeats are limited; streamrank's own lines are never dropped.
LIBRARIES = ("aiokafka", "faust", "mode")


class RepeatLimiter(logging.Filter):
    def __init__(self, every_s: float = 30.0, level: int = logging.WARNING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self.level = level
        self.clock = clock
        self._last: dict[tuple[str, int, str], float] = {}  # template -> when last let through
        self._dropped: dict[tuple[str, int, str], int] = {}
        self.dropped_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            self.dropped_total += 1
            return False
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        if dropped and last is not None:
            record.msg = f"{record.msg} [{dropped} more like this in the last {now - last:.0f} s]"
        if len(self._last) > 10_000:  # bounded whatever the libraries log
            self._last.clear()
        return True

    def take_dropped(self) -> int:
        """Records dropped since the last call (for the outage summary)."""
        count, self.dropped_total = self.dropped_total, 0
        return count


def install(limiter: RepeatLimiter, prefixes: Iterable[str] = LIBRARIES) -> int:
    """Attach `limiter` to every existing logger under `prefixes` (a logger's filters do not
    see its children's records, so each is attached); returns how many."""
    names = tuple(prefixes)
    count = 0
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (isinstance(logger, logging.Logger) and name.split(".")[0] in names
                and limiter not in logger.filters):
            logger.addFilter(limiter)
            count += 1
    for name in names:
        root = logging.getLogger(name)
        if limiter not in root.filters:
            root.addFilter(limiter)
            count += 1
    return count
