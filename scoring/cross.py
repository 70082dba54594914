"""Cross-encoder scorer: one transformer pass per (query, history, item) pair.

The most accurate kind and the most expensive: every candidate is a full forward pass over
[CLS] query [SEP] history [SEP] item [SEP] (Featurizer.pair_batch). Pairs of all requests of a
call are scored together, sorted by token length and cut into chunks of `max_pairs`, so a
chunk holds pairs of similar length and little compute goes into padding. It precomputes
nothing per item, so there is nothing to warm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from scoring.base import (
    ItemText,
    ModelError,
    ScoreRequest,
    ScoreResult,
    VariantDecision,
    load_verified,
)
from scoring.session import (
    Device,
    Runner,
    check_io,
    chosen_provider,
    create_session,
    graph_path,
    load_featurizer,
    unknown_last,
    wants_gpu,
)
from scoring.variants import choose_variant

log = logging.getLogger(__name__)

KIND = "cross"
GRAPH = "cross"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = ("logits",)
# (query, history newest first, item text)
Triple = tuple[str, Sequence[str], str]
Timings = dict[str, float]


class CrossScorer:
    """Scores candidates with an exported cross-encoder (a `cross` version folder)."""

    name = "cross"
    caches_items = False

    def __init__(
        self,
        model_dir: Path,
        *,
        device: Device = "auto",
        variant: str | None = None,
        threads: int | None = None,
        max_pairs: int = 64,
    ) -> None:
        if max_pairs < 1:
            raise ValueError("max_pairs must be >= 1")
        self.model_dir = Path(model_dir)
        self.manifest = load_verified(self.model_dir)
        if self.manifest.kind != KIND:
            raise ModelError(f"{self.model_dir}: kind {self.manifest.kind!r}, expected {KIND!r}")
        self.version: str = self.manifest.version
        self.featurizer = load_featurizer(self.manifest, self.model_dir)
        self.max_pairs = max_pairs
        self._lock = threading.Lock()
        self.pairs_scored = 0
        self.runs = 0
        self._device, self._threads = device, threads
        self._runner: Runner | None = None
        self.provider: str = ""
        # Opens the variant that serves, after checking a reduced one on this machine.
        self.variant_decision: VariantDecision = choose_variant(
            self.manifest, gpu=wants_gpu(device), override=variant, use=self._use,
            trial=lambda requests: self._score(requests, {}),
        )
        self.pairs_scored = self.runs = 0  # the counters are about searches, not the check
        log.info(
            "cross %s (%s) loaded from %s on %s (threads=%s, max_pairs=%d)",
            self.version,
            self.variant,
            self.model_dir,
            self.provider,
            threads or "default",
            max_pairs,
        )

    @property
    def variant(self) -> str:
        return self.variant_decision.variant

    def _use(self, variant: str) -> None:
        path = graph_path(self.manifest, self.model_dir, variant, GRAPH)
        session = create_session(path, device=self._device, threads=self._threads)
        check_io(session, INPUTS, OUTPUTS, what=str(path))
        self._runner = Runner(session, OUTPUTS)
        self.provider = chosen_provider(session)

    def warm_items(self, items: Sequence[ItemText]) -> int:
        return 0  # a pair's score depends on the query: nothing to precompute per item

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        timings: Timings = {}
        with self._lock:
            scores = self._score(requests, timings)
        return ScoreResult(scores, timings)

    def _score(self, requests: Sequence[ScoreRequest], timings: Timings) -> list[list[float]]:
        triples: list[Triple] = [
            (req.query, req.history, text) for req in requests for _, text in req.candidates if text
        ]
        logits = self._score_pairs(triples, timings)
        out: list[list[float]] = []
        start = 0
        for req in requests:
            texts = [text for _, text in req.candidates]
            known = sum(1 for t in texts if t)
            out.append(unknown_last(logits[start : start + known], texts))
            start += known
        return out

    def score_pairs(self, triples: Sequence[Triple], timings: Timings | None = None
                    ) -> npt.NDArray[np.float32]:
        """Raw logits of each (query, history, item) triple, in order (used by the cascade);
        seconds spent are added to `timings` ("tokenize", "inference") when given."""
        with self._lock:
            return self._score_pairs(triples, {} if timings is None else timings)

    def _score_pairs(self, triples: Sequence[Triple], timings: Timings
                     ) -> npt.NDArray[np.float32]:
        if self._runner is None:
            raise ModelError(f"{self.model_dir}: no variant opened")
        started = time.perf_counter()
        out = np.zeros(len(triples), dtype=np.float32)
        lengths = [len(self.featurizer.pair_ids(q, h, i)[0]) for q, h, i in triples]
        order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
        chunks = [order[s : s + self.max_pairs] for s in range(0, len(order), self.max_pairs)]
        batches = [self.featurizer.pair_batch([triples[j] for j in idx]) for idx in chunks]
        tokenized = time.perf_counter()
        for idx, batch in zip(chunks, batches, strict=True):
            result = self._runner.run(
                {
                    "input_ids": batch.input_ids,
                    "attention_mask": batch.attention_mask,
                    "token_type_ids": batch.token_type_ids,
                }
            )
            out[idx] = np.asarray(result[0], dtype=np.float32).reshape(-1)
        timings["tokenize"] = timings.get("tokenize", 0.0) + tokenized - started
        timings["inference"] = timings.get("inference", 0.0) + time.perf_counter() - tokenized
        self.pairs_scored += len(triples)
        self.runs += len(chunks)
        return out
