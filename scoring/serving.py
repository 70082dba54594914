"""The serving scorer and its hot swap.

A model update must never stall searches nor replace a working model by a broken one: the new
version is loaded and validated in a worker thread (seconds of checksums, session creation and
a probe run, never on the event loop), and only then does the slot point to it. Swapping is a
single reference assignment, so a batch that already took `current` finishes on the scorer it
started with, and the old scorer is freed when the last such batch drops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from scoring.base import Scorer

log = logging.getLogger(__name__)

# Builds and validates a scorer for a version (e.g. functools.partial(registry.load, ...)).
Loader = Callable[[Path | str], Scorer]


class ScorerSlot:
    """Holds the scorer that serves; `swap_to` replaces it only by a validated one."""

    def __init__(self, scorer: Scorer) -> None:
        self._current = scorer
        # One swap at a time: two updates in a row are applied in order, the last one wins.
        self._swap_lock = asyncio.Lock()
        self.swaps = 0
        self.refused = 0
        self.last_refusal = ""

    @property
    def current(self) -> Scorer:
        return self._current

    async def swap_to(self, ref: Path | str, *, loader: Loader) -> bool:
        """Load `ref` with `loader` off the event loop and serve it; False (old model kept)
        when loading or validating fails for any reason."""
        async with self._swap_lock:
            old = self._current
            try:
                scorer = await asyncio.to_thread(loader, ref)
            except Exception as exc:  # any failure is a refusal: the old model keeps serving
                self.refused += 1
                self.last_refusal = f"{ref}: {exc}"
                log.error("refused model %s: %s (still serving %s)", ref, exc, old.version)
                return False
            self._current = scorer
            self.swaps += 1
            log.info(
                "serving model %s (%s on %s), was %s",
                scorer.version,
                scorer.name,
                scorer.provider,
                old.version,
            )
            return True
