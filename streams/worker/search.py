"""Answering one search: state → micro-batcher → RankedResult. Plain asyncio, no Faust.

Kept apart from the agents so the whole decision can be tested without a broker and so the
agents stay thin (decode, call this, produce).
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

from contracts import RankedResult, SearchEvent
from scoring.base import ScoreRequest
from scoring.batcher import MicroBatcher, Outcome
from scoring.ranking import original_order, rank, unique_candidates
from state import CatalogStore, SequenceStore

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Answer(NamedTuple):
    result: RankedResult
    history: list[str]  # the texts the model read as the user's history: kept with the impression
    outcome: Outcome  # how scoring went: degraded and why, stage timings
    state_s: float  # seconds spent reading state (sequence and catalog)


class SearchHandler:
    def __init__(
        self,
        batcher: MicroBatcher,
        sequences: SequenceStore,
        catalog: CatalogStore,
        *,
        history_length: int = 10,
    ) -> None:
        self.batcher = batcher
        self.sequences = sequences
        self.catalog = catalog
        self.history_length = history_length
        self.last_outcome: Outcome | None = None

    def history(self, user_id: str) -> list[str]:
        """The user's recent behaviour as text, newest first: item titles and their queries."""
        texts: list[str] = []
        for entry in self.sequences.get(user_id).entries[: self.history_length]:
            item = self.catalog.get(entry.item_id)
            if item is not None:
                texts.append(item.title)
            if entry.query:
                texts.append(entry.query)
        return texts

    async def answer(self, search: SearchEvent, received_ts: int) -> Answer:
        started = time.perf_counter()
        candidates = unique_candidates(search.candidates)
        history = self.history(search.user_id)
        request = ScoreRequest(
            query=search.query,
            history=history,
            candidates=[(c.item_id, self.catalog.text(c.item_id)) for c in candidates],
        )
        state_s = time.perf_counter() - started
        outcome = await self.batcher.submit(request)
        self.last_outcome = outcome
        if outcome.scores is None:
            # Overloaded, too slow or failing: answered in the site's order, marked degraded.
            log.warning("request %s degraded (%s)", search.request_id, outcome.reason)
            items = original_order(candidates)
        else:
            items = rank(candidates, outcome.scores)
        result = RankedResult(
            request_id=search.request_id,
            user_id=search.user_id,
            items=items,
            model_version=outcome.model_version,
            degraded=outcome.degraded,
            received_ts=received_ts,
            published_ts=now_ms(),
        )
        return Answer(result, history, outcome, state_s)
