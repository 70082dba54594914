"""Hybrid scorer: behaviour features + MiniLM text in one graph, with explanations.

A version folder holds encoder.onnx (the embed kind's text encoder, possibly fine-tuned),
hybrid.onnx (scoring/training/hybrid_model.py exported), neighbours.npz (co-occurrence
neighbours learned with it) and the manifest, whose features["behaviour"] is the
BehaviourSpec the version was trained with. Text embeddings come through the embed scorer's
encoder and caches (items warmed from the catalog, query/history texts in an LRU).

Per request, the features are built HERE, with this version's spec and neighbours, from
`ScoreRequest.behaviour` (scoring/behaviour.py; the worker fills it from its state): a hot swap
to a version with another spec stays consistent. A request without behaviour gets the features
of a user and items without state (site order kept as the position). The result carries the
feature matrices used (the worker logs them with the impression) and, for requests with
`explain`, an Explanation: per-feature contributions of the wide part, the text/deep part as
one term (they add up to the score) and the attention over the history texts.

    hybrid(features [B,C,F], item_mask [B,C], query [B,D], history [B,H,D], history_mask [B,H],
           items [B,C,D]) -> scores [B,C], attention [B,C,H], contributions [B,C,F], deep [B,C]
Candidates without text (unknown to the catalog) rank last, as with every text scorer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from scoring.base import ModelError, ScoreRequest, ScoreResult
from scoring.behaviour import BehaviourInputs, build
from scoring.behaviour_spec import BehaviourSpec
from scoring.embed import EmbedScorer, ItemKey, Timings, Vector
from scoring.explanation import Explanation
from scoring.neighbours import NEIGHBOURS_FILE, Neighbours
from scoring.session import unknown_last
from scoring.zeroshot import LRUCache

log = logging.getLogger(__name__)

KIND = "hybrid"
GRAPH = "hybrid"
INPUTS = ("features", "item_mask", "query", "history", "history_mask", "items")
OUTPUTS = ("scores", "attention", "contributions", "deep")
Matrix = npt.NDArray[np.float32]


def behaviour_spec(features: object, source: str) -> BehaviourSpec:
    """The BehaviourSpec a manifest's `features` records; ModelError when it is missing, of an
    unknown version or names other features than this code builds."""
    data = features.get("behaviour") if isinstance(features, dict) else None
    if not isinstance(data, dict):
        raise ModelError(f"{source}: the manifest has no behaviour feature spec")
    try:
        return BehaviourSpec.from_dict(data)
    except ValueError as exc:
        raise ModelError(f"{source}: {exc}") from exc


def default_inputs(req: ScoreRequest) -> BehaviourInputs:
    """A request without behaviour: no user or item state, the site's order as positions."""
    c = len(req.candidates)
    return BehaviourInputs(now=0, query=req.query, item_ids=[i for i, _ in req.candidates],
                           positions=list(range(c)), retrieval_scores=[None] * c,
                           attributes=[None] * c)


class HybridScorer(EmbedScorer):
    name = "hybrid"
    KIND = KIND
    HEAD_GRAPH = GRAPH
    HEAD_INPUTS = INPUTS
    HEAD_OUTPUTS = OUTPUTS

    def _load_extras(self) -> None:
        self.spec = behaviour_spec(self.manifest.features, str(self.model_dir))
        if NEIGHBOURS_FILE not in self.manifest.files:
            raise ModelError(f"{self.model_dir}: manifest does not list {NEIGHBOURS_FILE}")
        try:
            self.neighbours = Neighbours.load(self.model_dir / NEIGHBOURS_FILE)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{self.model_dir}: cannot read {NEIGHBOURS_FILE} ({exc})") from exc

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        timings: Timings = {"tokenize": 0.0, "encode": 0.0, "features": 0.0, "head": 0.0}
        with self._lock:
            scores, features, explanations = self._run(requests, timings, self._items,
                                                       self._texts, count=True)
        return ScoreResult(scores, timings, features=features, behaviour_spec=self.spec,
                           explanations=explanations)

    def _score(self, requests: Sequence[ScoreRequest], timings: Timings,
               items_cache: LRUCache[ItemKey], texts_cache: LRUCache[str], *,
               count: bool = False) -> list[list[float]]:
        return self._run(requests, timings, items_cache, texts_cache, count=count)[0]

    def features(self, req: ScoreRequest) -> Matrix:
        """The [C, F] feature matrix of one request, as `score` builds it."""
        inputs = req.behaviour if req.behaviour is not None else default_inputs(req)
        if list(inputs.item_ids) != [i for i, _ in req.candidates]:
            raise ValueError("behaviour inputs name other candidates than the request")
        return build(self.spec, inputs, self.neighbours)

    def _run(
        self, requests: Sequence[ScoreRequest], timings: Timings,
        items_cache: LRUCache[ItemKey], texts_cache: LRUCache[str], *, count: bool,
    ) -> tuple[list[list[float]], list[Matrix | None], list[Explanation | None]]:
        got = self._gather(requests, timings, items_cache, texts_cache, count=count)
        started = time.perf_counter()
        matrices: list[Matrix | None] = [self.features(r) for r in requests]
        timings["features"] = timings.get("features", 0.0) + time.perf_counter() - started
        outputs = self._run_graph(requests, matrices, got.items, got.texts, timings)
        scores: list[list[float]] = []
        explanations: list[Explanation | None] = []
        for req, out in zip(requests, outputs, strict=True):
            texts = [text for _, text in req.candidates]
            scores.append(unknown_last(out[0], texts))
            explanations.append(self._explain(req, out) if req.explain else None)
        return scores, matrices, explanations

    def _explain(self, req: ScoreRequest, out: tuple[Matrix, ...]) -> Explanation:
        """Per candidate in request order; unknown candidates get zeros."""
        c, f, h = len(req.candidates), self.spec.size, self.history_items
        known = [j for j, (_, text) in enumerate(req.candidates) if text]
        contributions = np.zeros((c, f), np.float32)
        deep = np.zeros(c, np.float32)
        attention = np.zeros((c, h), np.float32)
        contributions[known], deep[known], attention[known] = out[2], out[3], out[1]
        return Explanation(self.spec.names, contributions, deep, attention,
                           tuple(self._history(req)))

    def _run_graph(
        self, requests: Sequence[ScoreRequest], matrices: Sequence[Matrix | None],
        items: dict[ItemKey, Vector], texts: dict[str, Vector], timings: Timings,
    ) -> list[tuple[Matrix, ...]]:
        """Per request: (scores, attention, contributions, deep) of its known candidates."""
        if self._head is None:
            raise ModelError(f"{self.model_dir}: no variant opened")
        known = [[j for j, (_, t) in enumerate(req.candidates) if t] for req in requests]
        f, h, d = self.spec.size, self.history_items, self.dim
        empty = (np.zeros(0, np.float32), np.zeros((0, h), np.float32),
                 np.zeros((0, f), np.float32), np.zeros(0, np.float32))
        out: list[tuple[Matrix, ...]] = [empty] * len(requests)
        active = [r for r, js in enumerate(known) if js]
        if not active:
            return out
        started = time.perf_counter()
        b, c = len(active), max(len(known[r]) for r in active)
        feed = {
            "features": np.zeros((b, c, f), np.float32), "item_mask": np.zeros((b, c), np.float32),
            "query": np.zeros((b, d), np.float32), "history": np.zeros((b, h, d), np.float32),
            "history_mask": np.zeros((b, h), np.float32), "items": np.zeros((b, c, d), np.float32),
        }
        for row, r in enumerate(active):
            req, js, matrix = requests[r], known[r], matrices[r]
            assert matrix is not None
            feed["features"][row, : len(js)] = matrix[js]
            feed["item_mask"][row, : len(js)] = 1.0
            feed["query"][row] = texts[req.query]
            hist = self._history(req)
            if hist:
                feed["history"][row, : len(hist)] = np.stack([texts[t] for t in hist])
                feed["history_mask"][row, : len(hist)] = 1.0
            feed["items"][row, : len(js)] = np.stack([items[req.candidates[j]] for j in js])
        result = [np.asarray(x, np.float32) for x in self._head.run(feed)]
        for row, r in enumerate(active):
            n = len(known[r])
            out[r] = (result[0][row, :n], result[1][row, :n], result[2][row, :n],
                      result[3][row, :n])
        timings["head"] = timings.get("head", 0.0) + time.perf_counter() - started
        self.head_calls += 1
        return out


__all__ = ["GRAPH", "INPUTS", "KIND", "OUTPUTS", "HybridScorer", "behaviour_spec",
           "default_inputs"]
