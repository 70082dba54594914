"""Answering one search: state → scorer → RankedResult. Plain asyncio, no Faust.

Kept apart from the agents so the whole decision can be tested without a broker and so the
agents stay thin (decode, call this, produce).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from contracts import RankedResult, SearchEvent
from scoring.base import Scorer, ScoreRequest
from scoring.ranking import original_order, rank, unique_candidates
from state import CatalogStore, SequenceStore

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class SearchHandler:
    def __init__(
        self,
        scorer: Scorer,
        sequences: SequenceStore,
        catalog: CatalogStore,
        *,
        history_length: int = 10,
    ) -> None:
        self.scorer = scorer
        self.sequences = sequences
        self.catalog = catalog
        self.history_length = history_length
        # One thread: ONNX Runtime parallelizes inside a run; the event loop must stay free.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer")

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

    def request_for(self, search: SearchEvent) -> ScoreRequest:
        candidates = unique_candidates(search.candidates)
        return ScoreRequest(
            query=search.query,
            history=self.history(search.user_id),
            candidates=[(c.item_id, self.catalog.text(c.item_id)) for c in candidates],
        )

    async def answer(self, search: SearchEvent, received_ts: int) -> RankedResult:
        candidates = unique_candidates(search.candidates)
        request = self.request_for(search)
        degraded = False
        try:
            loop = asyncio.get_running_loop()
            scores = (await loop.run_in_executor(self._executor, self.scorer.score, [request]))[0]
            items = rank(candidates, scores)
        except Exception:
            # A search is always answered: in the site's order, marked degraded.
            log.exception("scoring failed for request %s; answering degraded", search.request_id)
            items = original_order(candidates)
            degraded = True
        return RankedResult(
            request_id=search.request_id,
            user_id=search.user_id,
            items=items,
            model_version=self.scorer.version,
            degraded=degraded,
            received_ts=received_ts,
            published_ts=now_ms(),
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
