"""The worker's scoring side as one Faust service: micro-batcher, catalog warm-up, rollout.

- The micro-batcher starts and stops with the worker.
- Items that arrive on the catalog are embedded in the background (when the scorer
  `caches_items`), so a search does not pay for its candidates' encoding. The warm-up never
  starves serving: it runs in the scorer's own thread through the micro-batcher's `idle`, only
  while no search waits, in slices sized from the measured time per item to last about
  `warm_slice_ms` (the most a search arriving meanwhile waits behind it), each followed by an
  equal pause (WARM_DUTY) so the event loop that reads searches is not starved of CPU.
  Candidates not warm yet are encoded inside their search's own batch, as before.
- Every worker follows the compacted models topic with its own group-less consumer (a group
  would hand each update to one worker only): the last ModelUpdate on it is loaded, validated,
  warmed with the catalog and swapped in; a bad one is refused and the old model keeps serving.
  Loading and the catalog walk run in the swap's thread, never on the event loop; the walk
  is consumed in chunks of WARM_CHUNK items, each encoded in the same yielding slices.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import mode
from aiokafka import TopicPartition

from contracts import DecodeError, ModelUpdate, decode
from scoring import ModelRegistry
from scoring.base import ItemText, Scorer
from scoring.batcher import MicroBatcher
from scoring.serving import ScorerSlot
from streams.kafka.connection import KafkaClients
from streams.settings import Settings

log = logging.getLogger(__name__)

WARM_INTERVAL_S = 0.5
WARM_CHUNK = 256
FIRST_SLICE = 2  # items in the first slice, before the time per item is known
# Of the time warm-up runs, how much it computes: a pause as long as each slice follows it, so
# the event loop (which reads the next searches) gets the CPU cores ONNX Runtime's threads use.
WARM_DUTY = 0.5
SLICE_WEIGHT = 0.3  # weight of the newest slice in the time-per-item estimate (EWMA)

# (item_id, model text) of every catalog item; called in a worker thread, consumed lazily.
CatalogWalk = Callable[[], Iterable[ItemText]]


def warm_catalog(
    scorer: Scorer, items: Iterable[ItemText], chunk: int = WARM_CHUNK,
    run: Callable[[list[ItemText]], int] | None = None,
) -> int:
    """Warm `scorer` with `items` read `chunk` at a time; returns how many were encoded.
    `run` warms one chunk (default: scorer.warm_items). Blocking: call it off the event loop."""
    if not scorer.caches_items:
        return 0
    done = 0
    walk = iter(items)
    while part := list(itertools.islice(walk, chunk)):
        done += run(part) if run is not None else scorer.warm_items(part)
    return done


class Slicer:
    """How many items one warm-up slice takes: about `slice_s` at the measured time per item."""

    def __init__(self, slice_s: float, most: int = WARM_CHUNK) -> None:
        self.slice_s = slice_s
        self.most = most
        self.item_s: float | None = None

    def size(self) -> int:
        if self.item_s is None:
            return FIRST_SLICE
        return max(1, min(self.most, int(self.slice_s / max(self.item_s, 1e-6))))

    def observe(self, encoded: int, seconds: float) -> None:
        if encoded <= 0:
            return  # all cached already: says nothing about the cost of encoding
        per_item = seconds / encoded
        self.item_s = per_item if self.item_s is None else (
            SLICE_WEIGHT * per_item + (1 - SLICE_WEIGHT) * self.item_s)


class ScoringService(mode.Service):
    def __init__(
        self,
        settings: Settings,
        slot: ScorerSlot,
        catalog_texts: CatalogWalk,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.slot = slot
        self.catalog_texts = catalog_texts
        self.registry = ModelRegistry(settings.models_dir)
        self.batcher = MicroBatcher(
            slot,
            max_batch_pairs=settings.batch_max_pairs,
            max_wait_ms=settings.batch_max_wait_ms,
            max_queue=settings.batch_queue,
            timeout_ms=settings.score_timeout_ms,
        )
        self._pending: dict[str, str] = {}
        self.slicer = Slicer(settings.warm_slice_ms / 1000.0)
        self.warm: dict[str, float] = {"items": 0, "slices": 0, "seconds": 0.0}
        self.model_updates = 0
        self.bad_model_updates = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def on_start(self) -> None:
        self.batcher.start()

    async def on_stop(self) -> None:
        await self.batcher.stop()

    # -- catalog warm-up -----------------------------------------------------------------

    def item_changed(self, item_id: str, text: str) -> None:
        self._pending[item_id] = text

    @property
    def pending(self) -> int:
        """Catalog items waiting to be warmed."""
        return len(self._pending)

    async def warm_pending(self) -> int:
        """Embed the items that changed since the last call (yielding slices, off the loop)."""
        scorer = self.slot.current
        if not scorer.caches_items or not self._pending:
            self._pending.clear()
            return 0
        done = 0
        while self._pending:
            part = list(itertools.islice(self._pending.items(), self.slicer.size()))
            for item_id, _ in part:
                del self._pending[item_id]
            done += await self.warm_slice(scorer, part)
        return done

    async def warm_items(self, scorer: Scorer, items: list[ItemText]) -> int:
        """Warm `scorer` with `items` in slices that yield to searches."""
        done, start = 0, 0
        while start < len(items):
            part = items[start : start + self.slicer.size()]
            start += len(part)
            done += await self.warm_slice(scorer, part)
        return done

    async def warm_slice(self, scorer: Scorer, part: list[ItemText]) -> int:
        """One slice in the scorer's thread once no search waits (a thread of its own when
        the batcher is not running: nothing to yield to then)."""

        def work() -> tuple[int, float]:
            started = time.perf_counter()
            encoded = scorer.warm_items(part)
            return encoded, time.perf_counter() - started

        if self.batcher.running:
            encoded, seconds = await self.batcher.idle(work)
        else:
            encoded, seconds = await asyncio.to_thread(work)
        self.slicer.observe(encoded, seconds)
        self.warm["items"] += encoded
        self.warm["slices"] += 1
        self.warm["seconds"] += seconds
        if encoded:
            await asyncio.sleep(seconds * (1 / WARM_DUTY - 1))
        return encoded

    def status(self) -> dict[str, float]:
        """Warm-up progress, for /scoring/ (streams/worker/rank_api.py)."""
        per_item = self.slicer.item_s
        return {**self.warm, "pending": self.pending, "slice_items": self.slicer.size(),
                "ms_per_item": round(per_item * 1000, 3) if per_item else 0.0}

    @mode.Service.task
    async def _warm_loop(self) -> None:
        while not self.should_stop:
            try:
                await self.warm_pending()
            except Exception:  # a failed warm-up only costs latency later, never a search
                log.exception("warming item embeddings failed")
            await self.sleep(WARM_INTERVAL_S)

    # -- model rollout -------------------------------------------------------------------

    def loader(self, manifest_sha256: str | None = None) -> Callable[[Path | str], Scorer]:
        """Load + validate + warm with the whole catalog: the new model serves warm. The
        returned callable blocks (ScorerSlot.swap_to runs it in a thread); the warm-up itself
        runs in yielding slices on the serving scorer's thread, so serving goes on at speed."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None

        def load(ref: Path | str) -> Scorer:
            scorer = self.registry.load(
                ref, device=self.settings.device, variant=self.settings.model_variant,
                manifest_sha256=manifest_sha256,
            )
            if scorer.caches_items:

                def run(part: list[ItemText]) -> int:
                    if loop is None:
                        return scorer.warm_items(part)
                    return asyncio.run_coroutine_threadsafe(
                        self.warm_items(scorer, part), loop).result()

                warmed = warm_catalog(scorer, self.catalog_texts(), run=run)
                log.info("%s warmed with %d catalog items", scorer.version, warmed)
            return scorer

        return load

    async def apply(self, raw: bytes | None) -> bool:
        """Serve the ModelUpdate in `raw`; False when it is malformed or refused."""
        try:
            update = decode(raw, ModelUpdate)
        except DecodeError as exc:
            self.bad_model_updates += 1
            log.error("ignoring malformed ModelUpdate: %s", exc)
            return False
        if update.version == self.slot.current.version:
            return True
        self.model_updates += 1
        log.info("ModelUpdate: %s at %s", update.version, update.uri)
        return await self.slot.swap_to(update.uri, loader=self.loader(update.sha256))

    @mode.Service.task
    async def _follow_models(self) -> None:
        # Every update has the key "current", so it lives in partition 0 (topology creates
        # the topic with one partition).
        tp = TopicPartition(self.settings.topics.models, 0)
        consumer = KafkaClients(self.settings).consumer(
            enable_auto_commit=False, group_id=None, auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            # Catch up to the end first and apply only the last update: what a worker that
            # starts now should serve, without loading every old version in turn.
            end = (await consumer.end_offsets([tp]))[tp]
            latest: bytes | None = None
            while await consumer.position(tp) < end:
                for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                    latest = records[-1].value if records else latest
            if latest is not None:
                await self.apply(latest)
            while not self.should_stop:
                for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    for rec in records:
                        await self.apply(rec.value)
        finally:
            await consumer.stop()
