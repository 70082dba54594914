"""Every search answered by its deadline: ranked when it can be, else in the site's order.

The promise, per search (docs/operations.md, "Deadlines and load shedding"):

- **From the worker's read**: a search is answered within `search_deadline_ms` (default
  `score_timeout_ms`) of the moment the worker read it. Its scoring carries that deadline into
  the micro-batcher (scoring.batcher.SCORE_DEADLINE): refused at once as `queue_full` when the
  work ahead of it cannot clear in time at the scorer's measured pace, answered `timeout` when
  it is still unscored at the deadline. Both in the site's order, `degraded: true`.
- **Bounded by the search's age**: a search that waited in Kafka longer than
  `search_max_age_ms` (from its record's timestamp, when it was produced, to the worker's
  read) is answered at once, unscored and without reading state, as `stale`: the site stopped
  waiting long ago, and a worker that fell behind (a burst, a restart) catches up at the speed
  of decoding and publishing instead of scoring. So every search is answered within
  `search_max_age_ms + search_deadline_ms` of being produced, whatever the offered load.

Why the record's timestamp and not the event's `ts`: `ts` is when the user searched as the
site tells it, and replays and backfills (the MovieLens evaluation, a site re-sending a day)
legitimately carry old times; the record's timestamp is when the search entered Kafka, which
is exactly the wait to bound. It is the producer's clock (or the broker's, with
LogAppendTime), so the age test only sheds what is clearly stale; the deadline proper is
measured on the worker's own clock, where it cannot be skewed.

Memory stays bounded because the worker reads at most `search_concurrency` searches at a time
(Faust leaves the rest in Kafka), each waits at most its deadline, and the batcher's queue is
bounded; a backlog lives in Kafka, where it costs nothing, and is shed as `stale`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from contracts import RankedResult, SearchEvent
from scoring.batcher import EXPLAIN, SCORE_DEADLINE, MicroBatcher, Outcome
from scoring.ranking import original_order, unique_candidates
from streams.settings import Settings
from streams.worker.explained import explain
from streams.worker.repeats import Repeats
from streams.worker.search import Answer, SearchHandler, now_ms

log = logging.getLogger(__name__)

STALE = "stale"
QUEUE_FULL = "queue_full"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class Budget:
    """One search's time: when it was read, how old it was then, when it must be answered."""

    received_ms: int
    age_ms: int  # the worker's clock at the read minus the record's (negative: clock skew)
    due_ms: int  # the worker's clock: answered by then
    stale: bool  # too old at the read: answered at once, unscored

    def remaining_s(self, now_ms: int) -> float:
        return (self.due_ms - now_ms) / 1000.0


class DeadlinePolicy:
    def __init__(self, deadline_ms: float, max_age_ms: float = 0.0) -> None:
        if deadline_ms <= 0 or max_age_ms < 0:
            raise ValueError("deadline_ms must be > 0 and max_age_ms >= 0")
        self.deadline_ms = deadline_ms
        self.max_age_ms = max_age_ms

    @classmethod
    def from_settings(cls, settings: Settings) -> DeadlinePolicy:
        deadline = settings.search_deadline_ms or settings.score_timeout_ms
        return cls(deadline, settings.search_max_age_ms)

    def budget(self, produced_ms: int | None, received_ms: int) -> Budget:
        """`produced_ms`: the record's timestamp (None: unknown, never stale)."""
        age = 0 if produced_ms is None else received_ms - produced_ms
        stale = self.max_age_ms > 0 and age > self.max_age_ms
        return Budget(received_ms, age, received_ms + round(self.deadline_ms), stale)


def site_order(search: SearchEvent, reason: str, received_ms: int, model_version: str,
               published_ms: int) -> RankedResult:
    """`search` answered unscored: its candidates in the site's order, degraded for `reason`."""
    return RankedResult(
        request_id=search.request_id, user_id=search.user_id,
        items=original_order(unique_candidates(search.candidates)),
        model_version=model_version, degraded=True, degraded_reason=reason,
        received_ts=received_ms, published_ts=published_ms,
    )


class DeadlineAnswerer:
    """The search handler behind the promise: sheds stale searches, gives every other one its
    deadline, labels degraded answers with their reason, attaches explanations, and answers a
    request_id once (streams/worker/repeats.py)."""

    def __init__(
        self,
        handler: SearchHandler,
        batcher: MicroBatcher,
        policy: DeadlinePolicy,
        *,
        repeats: Repeats | None = None,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.handler = handler
        self.batcher = batcher
        self.policy = policy
        self.repeats = repeats or Repeats()
        self.clock_ms = clock_ms
        self.counts: Counter[str] = Counter()

    async def answer(
        self, search: SearchEvent, received_ms: int, produced_s: float | None = None
    ) -> Answer | None:
        """The answer to publish, or None when this request_id was answered already (its first
        result stands: never ranked, kept or published twice). `produced_s`: the record's
        timestamp (seconds, as Faust gives it)."""
        if not self.repeats.begin(search.user_id, search.request_id):
            self.counts["repeated"] += 1
            return None
        produced_ms = None if produced_s is None else round(produced_s * 1000)
        try:
            answer = await self._answer(search, received_ms, produced_ms)
        except BaseException:
            self.repeats.abandon(search.user_id, search.request_id)  # it may come again
            raise
        self.repeats.done(search.user_id, search.request_id)
        return answer

    async def _answer(self, search: SearchEvent, received_ms: int,
                      produced_ms: int | None) -> Answer:
        budget = self.policy.budget(produced_ms, received_ms)
        if budget.stale:
            return self._unscored(search, STALE, received_ms)
        remaining = budget.remaining_s(self.clock_ms())
        # Carried to the batcher through the handler, which does not know about them.
        deadline = SCORE_DEADLINE.set(self.batcher.clock.now() + remaining)
        explaining = EXPLAIN.set(search.explain)
        try:
            answer = await self.handler.answer(search, received_ms)
        finally:
            EXPLAIN.reset(explaining)
            SCORE_DEADLINE.reset(deadline)
        return self._finish(search, answer)

    def _unscored(self, search: SearchEvent, reason: str, received_ms: int) -> Answer:
        self.counts[reason] += 1
        version = self.batcher.slot.current.version
        result = site_order(search, reason, received_ms, version, self.clock_ms())
        return Answer(result, [], Outcome(None, True, version, {}, reason), 0.0)

    def _finish(self, search: SearchEvent, answer: Answer) -> Answer:
        result, outcome = answer.result, answer.outcome
        if result.degraded:
            reason = outcome.reason or "error"
            self.counts[reason] += 1
            result = result.model_copy(update={"degraded_reason": reason})
        else:
            self.counts["ranked"] += 1
            if search.explain and outcome.explanations is not None:
                scored = [c.item_id for c in unique_candidates(search.candidates)]
                result = explain(result, scored, outcome.explanations)
        return answer._replace(result=result)


__all__ = ["QUEUE_FULL", "STALE", "TIMEOUT", "Budget", "DeadlineAnswerer", "DeadlinePolicy",
           "site_order"]
