"""The worker's scoring side as one Faust service: micro-batcher, catalog warm-up, rollout.

- The micro-batcher starts and stops with the worker.
- Items that arrive on the catalog are embedded in the background (when the scorer
  `caches_items`), so a search does not pay for its candidates' encoding.
- Every worker follows the compacted models topic with its own group-less consumer (a group
  would hand each update to one worker only): the last ModelUpdate on it is loaded, validated,
  warmed with the catalog and swapped in; a bad one is refused and the old model keeps serving.
  Loading, the catalog walk and the warm-up all run in the swap's thread, never on the event
  loop, and the walk is consumed in chunks of WARM_CHUNK items.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
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

# (item_id, model text) of every catalog item; called in a worker thread, consumed lazily.
CatalogWalk = Callable[[], Iterable[ItemText]]


def warm_catalog(scorer: Scorer, items: Iterable[ItemText], chunk: int = WARM_CHUNK) -> int:
    """Warm `scorer` with `items` read `chunk` at a time; returns how many were encoded.
    Blocking: call it off the event loop."""
    if not scorer.caches_items:
        return 0
    done = 0
    walk = iter(items)
    while part := list(itertools.islice(walk, chunk)):
        done += scorer.warm_items(part)
    return done


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

    async def warm_pending(self) -> int:
        """Embed the items that changed since the last call (in chunks, off the loop)."""
        scorer = self.slot.current
        if not scorer.caches_items or not self._pending:
            self._pending.clear()
            return 0
        items = list(self._pending.items())
        self._pending.clear()
        done = 0
        for start in range(0, len(items), WARM_CHUNK):
            done += await asyncio.to_thread(scorer.warm_items, items[start : start + WARM_CHUNK])
        return done

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
        returned callable blocks (ScorerSlot.swap_to runs it in a thread)."""

        def load(ref: Path | str) -> Scorer:
            scorer = self.registry.load(
                ref, device=self.settings.device, variant=self.settings.model_variant,
                manifest_sha256=manifest_sha256,
            )
            if scorer.caches_items:
                warmed = warm_catalog(scorer, self.catalog_texts())
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
