"""Answering one search: state → micro-batcher → RankedResult. Plain asyncio, no Faust.

Kept apart from the agents so the whole decision can be tested without a broker and so the
agents stay thin (decode, call this, produce). When the worker keeps behaviour state, each
search also gathers what the behaviour features are built from (streams/worker/
behaviour_source.py) and passes it in the ScoreRequest; a behaviour-aware scorer builds the
features itself and returns the matrix it scored with, which the answer carries in shown
order so that the impression logs exactly what the model saw.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from contracts import Item, RankedItem, RankedResult, SearchEvent
from scoring.base import ScoreRequest
from scoring.batcher import MicroBatcher, Outcome
from scoring.behaviour_spec import BehaviourSpec
from scoring.ranking import original_order, rank, unique_candidates
from state import CatalogStore, SequenceStore
from streams.worker.behaviour_source import BehaviourSource

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def reads_behaviour(scorer: object) -> bool:
    """Whether `scorer` builds behaviour features (the hybrid keeps its version's spec): only
    then is a search's behaviour gathered, a text scorer would not read it."""
    return isinstance(getattr(scorer, "spec", None), BehaviourSpec)


class Answer(NamedTuple):
    result: RankedResult
    history: list[str]  # the texts the model read as the user's history: kept with the impression
    outcome: Outcome  # how scoring went: degraded and why, stage timings
    state_s: float  # seconds spent reading state (sequence, catalog, behaviour inputs)
    # The behaviour features the model scored with, rows in the result's (shown) order, and
    # their spec's id; None and "" when it used none (a text scorer, or a degraded answer).
    features: npt.NDArray[np.float32] | None = None
    feature_spec: str = ""
    behaviour_s: float = 0.0  # seconds of state_s spent gathering the behaviour inputs


def shown_rows(
    features: npt.ArrayLike | None, scored: list[str], shown: list[RankedItem]
) -> npt.NDArray[np.float32] | None:
    """The feature rows (in scored order) rearranged into the shown order."""
    if features is None:
        return None
    matrix = np.asarray(features, dtype=np.float32)
    row = {item_id: n for n, item_id in enumerate(scored)}
    return matrix[[row[i.item_id] for i in shown]]


class SearchHandler:
    def __init__(
        self,
        batcher: MicroBatcher,
        sequences: SequenceStore,
        catalog: CatalogStore,
        *,
        history_length: int = 10,
        behaviour: BehaviourSource | None = None,
    ) -> None:
        self.batcher = batcher
        self.sequences = sequences
        self.catalog = catalog
        self.history_length = history_length
        self.behaviour = behaviour
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
        items: list[Item | None] = [self.catalog.get(c.item_id) for c in candidates]
        gathering = time.perf_counter()
        behaviour = (self.behaviour.inputs(search, candidates, items)
                     if self.behaviour is not None and reads_behaviour(self.batcher.slot.current)
                     else None)
        behaviour_s = time.perf_counter() - gathering
        request = ScoreRequest(
            query=search.query,
            history=history,
            candidates=[(c.item_id, "" if item is None else item.text())
                        for c, item in zip(candidates, items, strict=True)],
            behaviour=behaviour,
        )
        state_s = time.perf_counter() - started
        outcome = await self.batcher.submit(request)
        self.last_outcome = outcome
        features, spec = None, ""
        if outcome.scores is None:
            # Overloaded, too slow or failing: answered in the site's order, marked degraded.
            log.warning("request %s degraded (%s)", search.request_id, outcome.reason)
            items_out = original_order(candidates)
        else:
            items_out = rank(candidates, outcome.scores)
            if outcome.features is not None and outcome.behaviour_spec is not None:
                features = shown_rows(outcome.features, [c.item_id for c in candidates],
                                      items_out)
                spec = outcome.behaviour_spec.id
        result = RankedResult(
            request_id=search.request_id,
            user_id=search.user_id,
            items=items_out,
            model_version=outcome.model_version,
            degraded=outcome.degraded,
            received_ts=received_ts,
            published_ts=now_ms(),
        )
        return Answer(result, history, outcome, state_s, features, spec, behaviour_s)
