"""Zero-shot scorer: the untrained baseline that later, fine-tuned scorers must beat.

score(c) = (1 - w) * cos(query, c) + w * cos(history, c), where `history` is the decay-weighted
mean (newest weight 1, then decay**i) of the user's recent texts, renormalized, and w = 0 for
a user without history. Embeddings come from a sentence encoder (OnnxEncoder in serving).

Item embeddings are cached under (item_id, text): a catalog text change yields a new key, and a
search never re-encodes an item it has seen. Query and history texts have their own cache,
since a user's history repeats across their searches. All misses of one `score` call go to
the encoder in a single `encode` call; `warm_items` fills the item cache ahead of searches.

Explanations (a request with `explain`): the score splits exactly into a query part,
(1 - w) * cos(query, c), and a history part, w * cos(history, c); the history part splits
further over the history entries, entry i weighing w * decay**i * cos(h_i, c) / |mean|, the
shares of the history part. As a scoring.explanation.Explanation: features "query" and
"history", `deep` = what places an unknown item (0 for a known one), attention = those shares.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from scoring.base import ItemText, ScoreRequest, ScoreResult, VariantBasis, VariantDecision
from scoring.explanation import Explanation

log = logging.getLogger(__name__)

MODEL_NAME = "zeroshot-minilm"
PARTS = ("query", "history")  # the score's two exact parts (Explanation names)
# Unknown items rank below every known one, spaced so their original order survives any sort.
UNKNOWN_STEP = 1e-4

Vector = npt.NDArray[np.float32]
K = TypeVar("K", bound=Hashable)


class TextEncoder(Protocol):
    """What the scorer needs from an encoder (OnnxEncoder, or a fake in tests)."""

    @property
    def version(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def dim(self) -> int: ...
    def encode(
        self, texts: Sequence[str], timings: dict[str, float] | None = None
    ) -> npt.NDArray[np.float32]: ...


class LRUCache(Generic[K]):
    """A bounded mapping that forgets the least recently used vector first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("cache capacity must be >= 0")
        self.capacity = capacity
        self._data: OrderedDict[K, Vector] = OrderedDict()

    def get(self, key: K) -> Vector | None:
        vec = self._data.get(key)
        if vec is not None:
            self._data.move_to_end(key)
        return vec

    def put(self, key: K, vec: Vector) -> None:
        if self.capacity == 0:
            return
        self._data[key] = vec
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class Gathered:
    """The vectors a batch of requests needs, and what finding them cost."""

    items: dict[tuple[str, str], Vector]
    texts: dict[str, Vector]
    item_hits: int = 0
    item_misses: int = 0
    text_hits: int = 0
    text_misses: int = 0
    encoded: int = 0  # distinct texts sent to the encoder (0: no encode call)


def gather_vectors(
    requests: Sequence[ScoreRequest],
    history: Callable[[ScoreRequest], list[str]],
    items_cache: LRUCache[tuple[str, str]],
    texts_cache: LRUCache[str],
    encode: Callable[[list[str]], npt.NDArray[np.float32]],
) -> Gathered:
    """Every vector the requests need: cache hits plus one `encode` call for all misses.

    Items are keyed (item_id, text), so a catalog text change is a miss; items without text
    are skipped (unknown items). Shared by the zero-shot and embed scorers.
    """
    out = Gathered({}, {})
    missing_items: dict[tuple[str, str], None] = {}  # ordered sets
    missing_texts: dict[str, None] = {}
    for req in requests:
        for key in req.candidates:
            if not key[1] or key in out.items or key in missing_items:
                continue
            vec = items_cache.get(key)
            if vec is None:
                out.item_misses += 1
                missing_items[key] = None
            else:
                out.item_hits += 1
                out.items[key] = vec
        for text in (req.query, *history(req)):
            if text in out.texts or text in missing_texts:
                continue
            vec = texts_cache.get(text)
            if vec is None:
                out.text_misses += 1
                missing_texts[text] = None
            else:
                out.text_hits += 1
                out.texts[text] = vec
    unique = list(dict.fromkeys([k[1] for k in missing_items] + list(missing_texts)))
    if unique:
        by_text = dict(zip(unique, encode(unique), strict=True))
        out.encoded = len(unique)
        # Results are read from these dicts, not the caches, which may already have evicted.
        for key in missing_items:
            out.items[key] = by_text[key[1]]
            items_cache.put(key, by_text[key[1]])
        for text in missing_texts:
            out.texts[text] = by_text[text]
            texts_cache.put(text, by_text[text])
    return out


# The sentence encoder is exported in fp32 only: nothing to decide at load time.
ZEROSHOT_VARIANT = VariantDecision(
    "fp32", VariantBasis.ONLY, "the zero-shot sentence encoder ships fp32 only"
)


class ZeroShotScorer:
    """Cosine similarity of query and history embeddings to item embeddings."""

    name = "zeroshot"
    caches_items = True
    variant_decision = ZEROSHOT_VARIANT
    warm_chunk = 64

    def __init__(
        self,
        encoder: TextEncoder,
        *,
        history_weight: float = 0.35,
        history_decay: float = 0.8,
        cache_size: int = 50_000,
        text_cache_size: int = 10_000,
        max_history: int = 20,
    ) -> None:
        if not 0.0 <= history_weight <= 1.0:
            raise ValueError("history_weight must be within [0, 1]")
        if not 0.0 < history_decay <= 1.0:
            raise ValueError("history_decay must be within (0, 1]")
        if max_history < 0:
            raise ValueError("max_history must be >= 0")
        self.encoder = encoder
        self.version: str = encoder.version
        self.provider: str = encoder.provider
        self.history_weight = history_weight
        self.history_decay = history_decay
        # Beyond ~20 entries decay**i is negligible (0.8**20 ~ 0.01) but encoding is not.
        self.max_history = max_history
        self._items: LRUCache[tuple[str, str]] = LRUCache(cache_size)
        self._texts: LRUCache[str] = LRUCache(text_cache_size)
        self._lock = threading.Lock()
        # Plain counters for the worker's metrics.
        self.item_hits = 0
        self.item_misses = 0
        self.text_hits = 0
        self.text_misses = 0
        self.encoded_texts = 0
        self.encode_calls = 0
        self.warmed_items = 0

    def cache_stats(self) -> dict[str, int]:
        return {
            "item_hits": self.item_hits,
            "item_misses": self.item_misses,
            "text_hits": self.text_hits,
            "text_misses": self.text_misses,
            "encoded_texts": self.encoded_texts,
            "encode_calls": self.encode_calls,
            "warmed_items": self.warmed_items,
            "item_cache_size": len(self._items),
            "text_cache_size": len(self._texts),
        }

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        timings = {"tokenize": 0.0, "encode": 0.0}
        with self._lock:
            items, texts = self._embeddings(requests, timings)
            started = time.perf_counter()
            scored = [self._score_one(req, items, texts) for req in requests]
            timings["similarity"] = time.perf_counter() - started
        scores = [row for row, _ in scored]
        explained = [why for _, why in scored]
        return ScoreResult(scores, timings,
                           explanations=explained if any(explained) else ())

    def warm_items(self, items: Sequence[ItemText]) -> int:
        """Encode the (item_id, text) pairs not cached yet, a chunk per lock so searches are
        not held up; returns how many were encoded."""
        todo = list(dict.fromkeys(key for key in items if key[1]))
        warmed = 0
        for start in range(0, len(todo), self.warm_chunk):
            with self._lock:
                chunk = [k for k in todo[start : start + self.warm_chunk]
                         if self._items.get(k) is None]
                if not chunk:
                    continue
                vectors = self.encoder.encode([text for _, text in chunk])
                for key, vec in zip(chunk, vectors, strict=True):
                    self._items.put(key, vec)
                warmed += len(chunk)
                self.warmed_items += len(chunk)
        return warmed

    def _history(self, req: ScoreRequest) -> list[str]:
        return [t for t in req.history[: self.max_history] if t]

    def _embeddings(
        self, requests: Sequence[ScoreRequest], timings: dict[str, float]
    ) -> tuple[dict[tuple[str, str], Vector], dict[str, Vector]]:
        got = gather_vectors(requests, self._history, self._items, self._texts,
                             lambda batch: self.encoder.encode(batch, timings))
        self.item_hits += got.item_hits
        self.item_misses += got.item_misses
        self.text_hits += got.text_hits
        self.text_misses += got.text_misses
        if got.encoded:
            self.encode_calls += 1
            self.encoded_texts += got.encoded
        return got.items, got.texts

    def _score_one(
        self,
        req: ScoreRequest,
        items: dict[tuple[str, str], Vector],
        texts: dict[str, Vector],
    ) -> tuple[list[float], Explanation | None]:
        n = len(req.candidates)
        scores = np.zeros(n, dtype=np.float64)
        parts = np.zeros((n, len(PARTS)), dtype=np.float64)
        history = self._history(req)
        shares = np.zeros((n, len(history)), dtype=np.float64)
        known = [j for j, (_, text) in enumerate(req.candidates) if text]
        if known:
            cand = np.stack([items[req.candidates[j]] for j in known]).astype(np.float64)
            sims = cand @ texts[req.query].astype(np.float64)
            vectors = [texts[t] for t in history]
            user = self._user_vector(vectors)
            if user is not None and self.history_weight > 0.0:
                w = self.history_weight
                query_part, history_part = (1.0 - w) * sims, w * (cand @ user)
                sims = query_part + history_part  # the score is exactly its two parts
                parts[known] = np.stack([query_part, history_part], axis=1)
                if req.explain:
                    shares[known] = w * self._entry_weights(cand, vectors)
            else:
                parts[known, 0] = sims
            # A broken embedding must not poison the ranking with NaN.
            scores[known] = np.nan_to_num(sims, nan=-1.0, posinf=1.0, neginf=-1.0)
        floor = float(scores[known].min()) if known else 0.0
        unknown = [j for j in range(n) if not req.candidates[j][1]]
        for rank, j in enumerate(unknown, start=1):
            scores[j] = floor - UNKNOWN_STEP * rank
        result: list[float] = scores.tolist()
        if not req.explain:
            return result, None
        parts = np.nan_to_num(parts)
        why = Explanation(
            names=PARTS, contributions=parts.astype(np.float32),
            # What the parts leave out: where an unknown item (or a repaired NaN) was placed.
            deep=(scores - parts.sum(axis=1)).astype(np.float32),
            attention=np.nan_to_num(shares).astype(np.float32), history=list(history),
        )
        return result, why

    def _decay(self, n: int) -> npt.NDArray[np.float64]:
        return self.history_decay ** np.arange(n, dtype=np.float64)

    def _user_vector(self, history: list[Vector]) -> npt.NDArray[np.float64] | None:
        if not history:
            return None
        mean = self._decay(len(history)) @ np.stack(history).astype(np.float64)
        norm = float(np.linalg.norm(mean))
        if not math.isfinite(norm) or norm < 1e-12:
            return None
        result: npt.NDArray[np.float64] = mean / norm
        return result

    def _entry_weights(
        self, cand: npt.NDArray[np.float64], history: list[Vector]
    ) -> npt.NDArray[np.float64]:
        """[candidates, entries]: each entry's term of cos(history, c); a row sums to it."""
        stacked = np.stack(history).astype(np.float64)
        decay = self._decay(len(history))
        norm = float(np.linalg.norm(decay @ stacked))
        result: npt.NDArray[np.float64] = (cand @ stacked.T) * (decay / norm)
        return result
