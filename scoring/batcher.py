"""Micro-batcher: many concurrent searches, one inference run.

    submit() ──► bounded queue ──► batching task ──► scorer thread ──► futures
                 (full: degraded)   (≤ max_batch_pairs   (one at a time,
                                     or max_wait_ms)       off the event loop)

Each search waits at most `timeout_ms` in all, or less when it brings its own deadline (an
absolute time on the batcher's clock: `submit(deadline=...)`, or the SCORE_DEADLINE context
variable its caller set). A search that cannot be scored in time is answered as degraded, so
the caller publishes the original order instead of hanging: at once when the queue is full or
when the scorer's measured pace says the work ahead of it cannot clear before its deadline
(`queue_full`), at its deadline when it is still unscored (`timeout`), or on a scorer error or
a stop. Timings split a search's latency into its queue wait and the scorer's own stages.

Background work (the catalog warm-up) goes through `idle`: it runs in the same scorer thread,
only while no search waits, one bounded slice at a time, so it never competes with searches
for the CPU nor makes one wait longer than a slice.

Every wait (the batching window, a search's timeout) is a timer of `clock`: the event loop's
by default, a manual one in tests, which then step time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from scoring.base import ScoreRequest
from scoring.behaviour_spec import BehaviourSpec
from scoring.explanation import Explanation
from scoring.serving import ScorerSlot

log = logging.getLogger(__name__)

RECENT_BATCHES = 512
PACE_WEIGHT = 0.3  # weight of the newest batch in the pairs/s estimate (EWMA)
T = TypeVar("T")

# The deadline of the search being answered, as an absolute time on the batcher's clock: set
# by a caller that cannot pass it through the code between it and `submit` (the worker sets
# it around its search handler). None: only `timeout_ms` applies.
SCORE_DEADLINE: ContextVar[float | None] = ContextVar("score_deadline", default=None)
# The same for `explain`: set, every request submitted asks the scorer for explanations.
EXPLAIN: ContextVar[bool] = ContextVar("score_explain", default=False)


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Seconds on a monotonic clock, and callbacks after a delay on it (on the event loop)."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...


class LoopClock:
    """The running event loop's clock (time.monotonic) and timers: the default."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


@dataclass(frozen=True)
class Outcome:
    """The answer to one submit: scores, or None with degraded=True and the reason."""

    scores: list[float] | None
    degraded: bool
    model_version: str
    # Seconds: "queue" plus the scorer's stages (e.g. tokenize, encode, head, inference).
    timings: dict[str, float] = field(default_factory=dict)
    reason: str = ""  # "" or one of: queue_full, timeout, error, stopped, cancelled
    # What explains the scores, when the request asked and the scorer can (scoring/base.py).
    explanations: Explanation | None = None
    # The behaviour feature matrix [C, F] the scores were computed from, in the request's
    # candidate order, and its spec (None for text scorers and degraded answers).
    features: npt.NDArray[np.float32] | None = None
    behaviour_spec: BehaviourSpec | None = None


@dataclass
class _Entry:
    request: ScoreRequest
    future: asyncio.Future[Outcome]
    enqueued: float
    pairs: int


class MicroBatcher:
    """Merges concurrent searches into batches for `slot.current.score`."""

    def __init__(
        self,
        slot: ScorerSlot,
        *,
        max_batch_pairs: int = 256,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        timeout_ms: float = 1000.0,
        on_batch: Callable[[int, int], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if max_batch_pairs < 1 or max_queue < 1:
            raise ValueError("max_batch_pairs and max_queue must be >= 1")
        if max_wait_ms < 0 or timeout_ms <= 0:
            raise ValueError("max_wait_ms must be >= 0 and timeout_ms > 0")
        self.slot = slot
        self.max_batch_pairs = max_batch_pairs
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.timeout = timeout_ms / 1000.0
        self.clock: Clock = clock or LoopClock()
        # (searches, pairs) of every scored batch: the worker's metrics, without scoring/
        # knowing about Prometheus.
        self.on_batch = on_batch
        self._queue: deque[_Entry] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: list[_Entry] = []
        self._idle: deque[tuple[Callable[[], Any], asyncio.Future[Any]]] = deque()
        # Candidate pairs the scorer gets through per second (EWMA over well-filled batches);
        # None until one ran: then nothing is refused for want of time.
        self.pairs_per_s: float | None = None
        # Counters for metrics.
        self.dispatched = 0  # batches handed to the scorer
        self.batches = 0  # batches scored
        self.requests = 0
        self.pairs = 0
        self.degraded: Counter[str] = Counter()
        self.recent_batch_pairs: deque[int] = deque(maxlen=RECENT_BATCHES)
        self.batch_pairs_histogram: Counter[int] = Counter()  # power-of-two upper bounds
        self.peak_queue_depth = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self.running:
            return
        # Bound to the running loop, so a batcher can be stopped and started again elsewhere.
        self._wakeup = asyncio.Event()
        # One thread: ONNX Runtime parallelizes inside a run; the event loop must stay free.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer")
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(self._executor), name="micro-batcher")

    async def stop(self) -> None:
        """Stop batching; everything queued or in flight is answered degraded ("stopped")."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for entry in [*self._inflight, *self._queue]:
            self._degrade(entry, "stopped")
        self._inflight = []
        self._queue.clear()
        while self._idle:
            _, future = self._idle.popleft()
            if not future.done():
                future.set_exception(RuntimeError("the micro-batcher stopped"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, request: ScoreRequest, *, deadline: float | None = None) -> Outcome:
        """Scores for `request`, or a degraded Outcome; returns within ~timeout_ms, and by
        `deadline` (else SCORE_DEADLINE's) when one is set."""
        loop = asyncio.get_running_loop()
        now = self.clock.now()
        if EXPLAIN.get() and not request.explain:
            request = dataclasses.replace(request, explain=True)
        entry = _Entry(request, loop.create_future(), now, len(request.candidates))
        budget = self.timeout
        deadline = SCORE_DEADLINE.get() if deadline is None else deadline
        if deadline is not None:
            budget = min(budget, deadline - now)
        if not self.running:
            self._degrade(entry, "stopped")
        elif budget <= 0:
            self._degrade(entry, "timeout")
        elif len(self._queue) >= self.max_queue or self.expected_wait(entry.pairs) > budget:
            self._degrade(entry, "queue_full")
        else:
            self._queue.append(entry)
            self.peak_queue_depth = max(self.peak_queue_depth, len(self._queue))
            self._wakeup.set()
        if entry.future.done():
            return entry.future.result()
        # Not answered in time: answered then, and marked done so the batcher skips it.
        timer = self.clock.call_later(budget, lambda: self._degrade(entry, "timeout"))
        try:
            await asyncio.wait({entry.future})
        except asyncio.CancelledError:
            self._degrade(entry, "cancelled")  # the caller went away: skip its work
            raise
        finally:
            timer.cancel()
        return entry.future.result()

    def expected_wait(self, pairs: int) -> float:
        """Seconds until a search of `pairs` candidates submitted now would be scored, at the
        measured pace: everything queued or being scored goes first. 0 until measured, and 0
        with nothing ahead: a search alone is always tried (which also re-measures the pace
        after a slow batch, so one slow batch cannot keep every later search out)."""
        ahead = sum(e.pairs for e in self._queue if not e.future.done())
        ahead += sum(e.pairs for e in self._inflight if not e.future.done())
        if not self.pairs_per_s or not ahead:
            return 0.0
        return (ahead + pairs) / self.pairs_per_s

    async def idle(self, work: Callable[[], T]) -> T:
        """Run `work` in the scorer thread once no search waits; its result. Every search
        queued meanwhile goes first, so keep `work` short (one bounded slice)."""
        if not self.running:
            raise RuntimeError("the micro-batcher is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._idle.append((work, future))
        self._wakeup.set()
        return await future

    def _degrade(self, entry: _Entry, reason: str) -> None:
        if entry.future.done():
            return
        self.degraded[reason] += 1
        waited = self.clock.now() - entry.enqueued
        entry.future.set_result(
            Outcome(None, True, self.slot.current.version, {"queue": waited}, reason)
        )

    async def _run(self, executor: ThreadPoolExecutor) -> None:
        while True:
            # Kept on self while collected and scored, so that stop() can answer it.
            self._inflight = []
            if self._idle and not any(not e.future.done() for e in self._queue):
                await self._run_idle(executor)
                continue
            await self._collect(self._inflight)
            await self._score(self._inflight, executor)

    async def _run_idle(self, executor: ThreadPoolExecutor) -> None:
        work, future = self._idle.popleft()
        if future.done():  # its caller went away
            return
        try:
            result = await asyncio.get_running_loop().run_in_executor(executor, work)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    async def _collect(self, batch: list[_Entry]) -> None:
        """Fill `batch`: wait for a first search, then up to max_wait after its arrival for
        more, until the batch holds max_batch_pairs candidate pairs."""
        pairs = 0
        while True:
            while self._queue:
                entry = self._queue[0]
                if entry.future.done():  # timed out while queued
                    self._queue.popleft()
                    continue
                if batch and pairs + entry.pairs > self.max_batch_pairs:
                    return  # it starts the next batch
                self._queue.popleft()
                batch.append(entry)
                pairs += entry.pairs
                if pairs >= self.max_batch_pairs:
                    return
            self._wakeup.clear()
            if not batch:
                if self._idle:
                    return  # nothing to score: background work may run
                await self._wakeup.wait()
                continue
            remaining = batch[0].enqueued + self.max_wait - self.clock.now()
            if remaining <= 0:
                return
            # Woken by a new search or by the end of the window; the loop then decides.
            timer = self.clock.call_later(remaining, self._wakeup.set)
            try:
                await self._wakeup.wait()
            finally:
                timer.cancel()

    async def _score(self, batch: list[_Entry], executor: ThreadPoolExecutor) -> None:
        live = [e for e in batch if not e.future.done()]
        if not live:
            return
        scorer = self.slot.current  # the whole batch runs on the scorer it started with
        started = self.clock.now()
        requests = [e.request for e in live]
        loop = asyncio.get_running_loop()
        self.dispatched += 1
        try:
            result = await loop.run_in_executor(executor, scorer.score, requests)
            _check(result.scores, requests)
        except asyncio.CancelledError:
            raise  # stop(): the entries are answered there
        except Exception:
            log.exception("scoring a batch of %d searches failed; answering degraded", len(live))
            for entry in live:
                self._degrade(entry, "error")
            return
        pairs = sum(e.pairs for e in live)
        elapsed = self.clock.now() - started
        # The pace of well-filled batches only: what the work queued ahead will run as (a lone
        # search pays a whole run's fixed costs, and would make the estimate pessimistic).
        if elapsed > 0 and 2 * pairs >= self.max_batch_pairs:
            pace = pairs / elapsed
            self.pairs_per_s = pace if self.pairs_per_s is None else (
                PACE_WEIGHT * pace + (1 - PACE_WEIGHT) * self.pairs_per_s)
        self.batches += 1
        self.requests += len(live)
        self.pairs += pairs
        self.recent_batch_pairs.append(pairs)
        self.batch_pairs_histogram[1 << max(pairs - 1, 0).bit_length()] += 1
        if self.on_batch is not None:
            self.on_batch(len(live), pairs)
        stages = {**result.timings, "score": self.clock.now() - started}
        explained = list(result.explanations) or [None] * len(live)
        features = list(result.features) or [None] * len(live)
        for entry, row, why, matrix in zip(live, result.scores, explained, features,
                                           strict=True):
            if entry.future.done():  # timed out meanwhile: already answered degraded
                continue
            timings = {"queue": started - entry.enqueued, **stages}
            entry.future.set_result(Outcome(row, False, scorer.version, timings,
                                            explanations=why, features=matrix,
                                            behaviour_spec=result.behaviour_spec))

    def stats(self) -> dict[str, object]:
        """A snapshot for metrics and /ready/-style endpoints."""
        return {
            "dispatched": self.dispatched,
            "batches": self.batches,
            "requests": self.requests,
            "pairs": self.pairs,
            "queue_depth": self.queue_depth,
            "pairs_per_s": round(self.pairs_per_s or 0.0, 1),
            "idle_waiting": len(self._idle),
            "peak_queue_depth": self.peak_queue_depth,
            "degraded": dict(self.degraded),
            "batch_pairs_histogram": dict(sorted(self.batch_pairs_histogram.items())),
            "recent_batch_pairs": list(self.recent_batch_pairs),
        }


def _check(scores: Sequence[Sequence[float]], requests: Sequence[ScoreRequest]) -> None:
    if len(scores) != len(requests) or any(
        len(row) != len(req.candidates) for row, req in zip(scores, requests, strict=False)
    ):
        raise ValueError("scorer returned the wrong number of scores")
    if not all(math.isfinite(s) for row in scores for s in row):
        raise ValueError("scorer returned non-finite scores")
