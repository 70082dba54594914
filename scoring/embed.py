"""Embed scorer: a text encoder for every text plus a small personalized head.

Items are encoded once and kept in an LRU under (item_id, text), so a catalog text change is
a new key; the worker warms the cache when the catalog changes (`warm_items`) and a search
then only encodes its query and the history texts not seen before. All misses of a call go
to the encoder together, and the head runs once per call for all requests:
    head(query [B, D], history [B, H, D], history_mask [B, H], items [B, C, D]) -> [B, C]
with H = FeatureSpec.history_items (newest first, zero-padded) and C the batch's largest
count of known candidates (zero-padded; those scores are dropped).
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
    create_session,
    graph_path,
    load_featurizer,
    unknown_last,
    wants_gpu,
)
from scoring.variants import choose_variant
from scoring.zeroshot import Gathered, LRUCache, gather_vectors

log = logging.getLogger(__name__)

KIND = "embed"
ENCODER = "encoder"
HEAD = "head"
ENCODER_INPUTS = ("input_ids", "attention_mask")
ENCODER_OUTPUTS = ("embedding",)
HEAD_INPUTS = ("query", "history", "history_mask", "items")
HEAD_OUTPUTS = ("scores",)
Vector = npt.NDArray[np.float32]
ItemKey = ItemText
Timings = dict[str, float]


class EmbedScorer:
    """Scores candidates with an exported `embed` version (encoder.onnx + head.onnx)."""

    name = "embed"
    caches_items = True
    # The kind in the manifest and the second graph with its IO (the hybrid kind overrides).
    KIND = KIND
    HEAD_GRAPH = HEAD
    HEAD_INPUTS: tuple[str, ...] = HEAD_INPUTS
    HEAD_OUTPUTS: tuple[str, ...] = HEAD_OUTPUTS

    def __init__(
        self,
        model_dir: Path,
        *,
        device: Device = "auto",
        variant: str | None = None,
        threads: int | None = None,
        batch_size: int = 64,
        cache_size: int = 100_000,
        text_cache_size: int = 10_000,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model_dir = Path(model_dir)
        self.manifest = load_verified(self.model_dir)
        if self.manifest.kind != self.KIND:
            raise ModelError(
                f"{self.model_dir}: kind {self.manifest.kind!r}, expected {self.KIND!r}")
        self.version: str = self.manifest.version
        self.featurizer = load_featurizer(self.manifest, self.model_dir)
        self._load_extras()
        self.history_items = self.featurizer.spec.history_items
        self.dim = self.manifest.embedding_dim
        self.batch_size = batch_size
        self._items: LRUCache[ItemKey] = LRUCache(cache_size)
        self._texts: LRUCache[str] = LRUCache(text_cache_size)
        # score() and warm_items() may run on different threads; the Featurizer and the
        # caches are not thread-safe.
        self._lock = threading.Lock()
        self._device, self._threads = device, threads
        self._encoder: Runner | None = None
        self._head: Runner | None = None
        self.provider: str = ""
        self._reset_counters()
        # Opens the variant that serves, after checking a reduced one on this machine; the
        # check scores without the caches, so every probe text is encoded as a new one.
        self.variant_decision: VariantDecision = choose_variant(
            self.manifest, gpu=wants_gpu(device), override=variant, use=self._use,
            trial=lambda requests: self._score(requests, {}, LRUCache(0), LRUCache(0)),
        )
        self._reset_counters()  # the counters are about searches, not the check
        log.info(
            "%s %s (%s) loaded from %s on %s (threads=%s)",
            self.name,
            self.version,
            self.variant,
            self.model_dir,
            self.provider,
            threads or "default",
        )

    def _load_extras(self) -> None:
        """Read the version's other files (verified already); a subclass hook."""

    def _reset_counters(self) -> None:
        # Plain counters for the worker's metrics.
        self.item_hits = 0
        self.item_misses = 0
        self.text_hits = 0
        self.text_misses = 0
        self.encoded_items = 0  # items encoded while answering searches
        self.encoded_texts = 0  # queries and history texts encoded
        self.warmed_items = 0  # items encoded ahead of searches by warm_items
        self.encode_calls = 0
        self.head_calls = 0

    @property
    def variant(self) -> str:
        return self.variant_decision.variant

    def _use(self, variant: str) -> None:
        self._encoder = self._open(variant, ENCODER, ENCODER_INPUTS, ENCODER_OUTPUTS)
        self._head = self._open(variant, self.HEAD_GRAPH, self.HEAD_INPUTS, self.HEAD_OUTPUTS)
        self.provider = self._encoder.provider
        if self._head.provider != self.provider:
            log.warning("embed %s: head runs on %s", self.version, self._head.provider)

    def _open(
        self, variant: str, graph: str, inputs: Sequence[str], outputs: Sequence[str]
    ) -> Runner:
        path = graph_path(self.manifest, self.model_dir, variant, graph)
        session = create_session(path, device=self._device, threads=self._threads)
        check_io(session, inputs, outputs, what=str(path))
        return Runner(session, outputs)

    def cache_stats(self) -> dict[str, int]:
        return {
            "item_hits": self.item_hits,
            "item_misses": self.item_misses,
            "text_hits": self.text_hits,
            "text_misses": self.text_misses,
            "encoded_items": self.encoded_items,
            "encoded_texts": self.encoded_texts,
            "warmed_items": self.warmed_items,
            "encode_calls": self.encode_calls,
            "head_calls": self.head_calls,
            "item_cache_size": len(self._items),
            "text_cache_size": len(self._texts),
        }

    def warm_items(self, items: Sequence[ItemText]) -> int:
        """Encode the (item_id, text) pairs not cached yet; returns how many were encoded.

        Works in chunks, taking the lock per chunk, so searches are not held up for the
        whole catalog."""
        todo = list(dict.fromkeys(key for key in items if key[1]))
        if len(todo) > self._items.capacity:
            log.warning(
                "warming %d items into a cache of %d: the oldest will be evicted again",
                len(todo),
                self._items.capacity,
            )
        warmed = 0
        for start in range(0, len(todo), self.batch_size):
            with self._lock:
                chunk = [k for k in todo[start : start + self.batch_size] if not self._cached(k)]
                if not chunk:
                    continue
                vectors = self._encode([text for _, text in chunk], {})
                for key, vec in zip(chunk, vectors, strict=True):
                    self._items.put(key, vec)
                warmed += len(chunk)
                self.warmed_items += len(chunk)
        return warmed

    def _cached(self, key: ItemKey) -> bool:
        return self._items.get(key) is not None

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        timings: Timings = {"tokenize": 0.0, "encode": 0.0, "head": 0.0}
        with self._lock:
            scores = self._score(requests, timings, self._items, self._texts, count=True)
        return ScoreResult(scores, timings)

    def _gather(self, requests: Sequence[ScoreRequest], timings: Timings,
                items_cache: LRUCache[ItemKey], texts_cache: LRUCache[str], *,
                count: bool) -> Gathered:
        """The requests' vectors from the caches, encoding what they miss; `count` adds the
        hits and misses to the scorer's counters (warm-up passes do not)."""
        got = gather_vectors(requests, self._history, items_cache, texts_cache,
                             lambda texts: self._encode(texts, timings))
        if count:
            self.item_hits += got.item_hits
            self.item_misses += got.item_misses
            self.text_hits += got.text_hits
            self.text_misses += got.text_misses
            if got.encoded:
                self.encoded_items += got.item_misses
                self.encoded_texts += got.text_misses
        return got

    def _score(
        self,
        requests: Sequence[ScoreRequest],
        timings: Timings,
        items_cache: LRUCache[ItemKey],
        texts_cache: LRUCache[str],
        *,
        count: bool = False,
    ) -> list[list[float]]:
        got = self._gather(requests, timings, items_cache, texts_cache, count=count)
        raw = self._run_head(requests, got.items, got.texts, timings)
        return [
            unknown_last(row, [text for _, text in req.candidates])
            for req, row in zip(requests, raw, strict=True)
        ]

    def _history(self, req: ScoreRequest) -> list[str]:
        return [t for t in req.history if t][: self.history_items]

    def _encode(self, texts: Sequence[str], timings: Timings) -> Vector:
        """(len(texts), D) embeddings; similar lengths share a graph run to limit padding."""
        if self._encoder is None:
            raise ModelError(f"{self.model_dir}: no variant opened")
        started = time.perf_counter()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        cap = self.featurizer.spec.text_tokens
        lengths = np.fromiter(
            (min(len(self.featurizer.ids(t)), cap) for t in texts), np.int64, len(texts)
        )
        order = np.argsort(lengths, kind="stable")
        chunks = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        inputs = [self.featurizer.texts([texts[j] for j in idx]) for idx in chunks]
        tokenized = time.perf_counter()
        for idx, (ids, mask) in zip(chunks, inputs, strict=True):
            result = self._encoder.run({"input_ids": ids, "attention_mask": mask})
            out[idx] = np.asarray(result[0], dtype=np.float32)
        timings["tokenize"] = timings.get("tokenize", 0.0) + tokenized - started
        timings["encode"] = timings.get("encode", 0.0) + time.perf_counter() - tokenized
        self.encode_calls += 1
        return out

    def _run_head(
        self,
        requests: Sequence[ScoreRequest],
        items: dict[ItemKey, Vector],
        texts: dict[str, Vector],
        timings: Timings,
    ) -> list[npt.NDArray[np.float32]]:
        """Raw head scores of each request's known candidates, in candidate order."""
        if self._head is None:
            raise ModelError(f"{self.model_dir}: no variant opened")
        known = [[key for key in req.candidates if key[1]] for req in requests]
        active = [r for r, keys in enumerate(known) if keys]
        raw = [np.zeros(len(keys), dtype=np.float32) for keys in known]
        if not active:
            return raw
        started = time.perf_counter()
        b, h, d = len(active), self.history_items, self.dim
        c = max(len(known[r]) for r in active)
        query = np.zeros((b, d), dtype=np.float32)
        history = np.zeros((b, h, d), dtype=np.float32)
        mask = np.zeros((b, h), dtype=np.float32)
        cands = np.zeros((b, c, d), dtype=np.float32)
        for row, r in enumerate(active):
            query[row] = texts[requests[r].query]
            hist = self._history(requests[r])
            if hist:
                history[row, : len(hist)] = np.stack([texts[t] for t in hist])
                mask[row, : len(hist)] = 1.0
            cands[row, : len(known[r])] = np.stack([items[k] for k in known[r]])
        result = self._head.run(
            {"query": query, "history": history, "history_mask": mask, "items": cands}
        )
        scores = np.asarray(result[0], dtype=np.float32).reshape(b, c)
        for row, r in enumerate(active):
            raw[r] = scores[row, : len(known[r])]
        timings["head"] = timings.get("head", 0.0) + time.perf_counter() - started
        self.head_calls += 1
        return raw
