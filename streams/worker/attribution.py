"""Attribution in the worker: impressions in, labelled samples out, exactly once.

- The search agent keeps each published ranking as an impression (state/impressions.py);
  the action agent labels it.
- Closing windows needs time to pass, but a Faust table may only be written while an event
  of the key's partition is processed. So a timer sends a tick to an internal topic that is
  co-partitioned with the user topics, once per owned partition, and the ticks agent closes
  that partition's due windows (`on_tick`): inside stream iteration, on the right partition.
- A window closes no later than the actions that could still label it: `ActionGate` holds a
  tick back while the action partition has unread records older than the tick (after a
  restart, or under lag), so a replayed click is never lost to a window closed too early.
- Exactly once (streams/worker/sample_log.py): each closed impression becomes one sample (the
  whole shown list with labels and logged features); the samples of every impression closing
  at a tick are committed in one Kafka transaction, then their impressions are removed from
  the changelogged table. Before a partition's
  first emission after it was (re)assigned, what was committed since the partition's
  checkpoint is read back and its impressions removed, so a crash between the commit and the
  removal does not emit them again. The checkpoint trails emissions by CHECKPOINT_LAG_MS:
  Faust recovers local RocksDB writes plus a changelog replay, which can bring back a removal
  lost in the crash while keeping a newer checkpoint; a trailing checkpoint still covers it.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import mode
import numpy.typing as npt
import orjson
from aiokafka.errors import KafkaError

from contracts import ActionEvent, RankedResult, SearchEvent
from state import ImpressionStore
from streams.worker.action_gate import ActionGate
from streams.worker.sample_log import SampleLog
from streams.worker.search import now_ms

log = logging.getLogger(__name__)

CHECKPOINT_LAG_MS = 15_000


class Closeable(Protocol):
    async def close(self) -> None: ...


class Attribution(mode.Service):
    def __init__(
        self,
        store: ImpressionStore,
        samples: SampleLog,
        gate: ActionGate,
        *,
        ticks: Any,
        owned: Callable[[], list[int]],
        tick_s: float,
        resources: Sequence[Closeable] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.samples = samples
        self.gate = gate
        self.ticks = ticks
        self.owned = owned
        self.tick_s = tick_s
        self.resources = [samples, *resources]
        self.counts: Counter[str] = Counter()
        self._reconciled: set[int] = set()
        # Per partition: (emitted at, first offset, next offset) of recent transactions.
        self._recent: dict[int, deque[tuple[int, int, int]]] = {}

    # -- searches and actions (called from their agents) ---------------------------------

    def on_search(
        self, search: SearchEvent, result: RankedResult, history: list[str], partition: int,
        features: npt.ArrayLike | None = None, feature_spec: str = "",
    ) -> None:
        """Keep the published ranking, with the features its items were scored with (rows in
        the result's order), until its window closes."""
        kept = self.store.record(search, result, history, partition, features, feature_spec)
        self.counts["impressions" if kept else "impressions_repeated"] += 1

    def on_action(self, action: ActionEvent, partition: int) -> str:
        outcome = self.store.attribute(action, partition)
        self.counts[f"actions_{outcome}"] += 1
        return outcome

    # -- closing windows (called from the ticks agent) -----------------------------------

    async def on_tick(self, partition: int, raw: bytes | None) -> int:
        """Close what is due on `partition`; returns how many samples (closed impressions)
        were committed."""
        try:
            now = int(orjson.loads(raw or b"")["now"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed tick on partition %d: %r", partition, raw)
            return 0
        self.counts["ticks"] += 1
        try:
            if partition not in self._reconciled:
                await self._reconcile(partition, now)
            # Asked just before closing: the read-back above takes round trips.
            cutoff = await self.gate.cutoff(partition, now)
            if cutoff < now:
                self.counts["ticks_held"] += 1  # actions still unread on this partition
            closing = self.store.close_due(partition, cutoff)
            emitted = None
            samples = [imp.sample() for imp in closing.impressions]
            if samples:
                first, end = await self.samples.emit(partition, samples)
                emitted = (now, first, end)
        except (TimeoutError, KafkaError, OSError) as exc:
            # Nothing is removed: the same windows close at a later tick, after a read-back
            # tells whether this attempt's transaction committed after all.
            self._reconciled.discard(partition)
            self.counts["emit_failures"] += 1
            log.warning("closing windows on partition %d failed: %r", partition, exc)
            return 0
        self.store.finish(closing, self._checkpoint(partition, now, emitted))
        self.counts["windows_closed"] += len(closing.impressions)
        self.counts["samples"] += len(samples)
        self.counts["sample_items"] += sum(len(s.items) for s in samples)
        return len(samples)

    async def _reconcile(self, partition: int, now: int) -> None:
        since = self.store.checkpoint(partition)
        found, end = await self.samples.committed_since(partition, since)
        retired = self.store.mark_emitted(partition, found, checkpoint=None)
        if retired:
            log.info("partition %d: %d impressions were emitted before a restart", partition,
                     retired)
        self.counts["recovered_emitted"] += retired
        # The read-back counts as an emission for the checkpoint: it advances past it only
        # once the removals above are long persisted.
        self._recent[partition] = deque([(now, since if since is not None else end, end)])
        self._reconciled.add(partition)

    def _checkpoint(
        self, partition: int, now: int, emitted: tuple[int, int, int] | None
    ) -> int | None:
        """The checkpoint to store: the start of the oldest transaction younger than the lag,
        else the end of the newest; None while nothing older than the lag is known."""
        recent = self._recent.setdefault(partition, deque())
        if emitted is not None:
            recent.append(emitted)
        settled = None
        while recent and recent[0][0] <= now - CHECKPOINT_LAG_MS:
            settled = recent.popleft()[2]
        if settled is None:
            return None
        return recent[0][1] if recent else settled

    async def release(self, partitions: Iterable[int]) -> None:
        """Partitions moved away: their read-back and producers must start over."""
        partitions = list(partitions)
        self.gate.forget(partitions)
        for partition in partitions:
            self._reconciled.discard(partition)
            self._recent.pop(partition, None)
        await self.samples.release(partitions)

    # -- the timer -------------------------------------------------------------------------

    @mode.Service.task
    async def _ticker(self) -> None:
        while not self.should_stop:
            await self.sleep(self.tick_s)
            try:
                for partition in self.owned():
                    await self.ticks.send(key=str(partition), value=orjson.dumps(
                        {"now": now_ms()}), partition=partition)
            except Exception:  # a missed tick only delays closing; the next one catches up
                log.exception("sending attribution ticks failed")

    async def on_stop(self) -> None:
        for resource in self.resources:
            await resource.close()
