"""Model inputs from (query, history, item text): one implementation for training and serving.

Both sides tokenize with the `tokenizers` library on the model's own tokenizer.json, through
this module, so the features a model was trained on are exactly the features it is served.

Cross-encoder pair layout (BERT segments; budgets in FeatureSpec):
    [CLS] query [SEP] history [SEP] item [SEP]      token_type 0 … 0 | 1 … 1
    history = the user's recent texts, newest first, joined by " ; ", cut at history_tokens
    (the segment and its [SEP] are left out when the user has no history).
Text encoder input (embed kind, zero-shot): [CLS] text [SEP], cut at text_tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

Ids = npt.NDArray[np.int64]
HISTORY_JOIN = " ; "


@dataclass(frozen=True)
class FeatureSpec:
    """Token budgets; recorded in every manifest so serving uses what training used."""

    max_length: int = 128  # cross: whole pair
    query_tokens: int = 24  # cross: query segment
    history_tokens: int = 48  # cross: history segment
    history_items: int = 10  # embed: history vectors given to the head
    text_tokens: int = 64  # embed: per text (query, history entry, item)

    def __post_init__(self) -> None:
        if self.max_length < self.query_tokens + self.history_tokens + 8:
            raise ValueError("max_length leaves no room for the item")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in data.items() if k in known})


@dataclass(frozen=True)
class PairBatch:
    """Padded cross-encoder inputs for N pairs."""

    input_ids: Ids
    attention_mask: Ids
    token_type_ids: Ids

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


class Featurizer:
    """Tokenizes with the model's tokenizer.json; caches item token ids (items repeat)."""

    def __init__(self, tokenizer: Tokenizer, spec: FeatureSpec, cache_size: int = 100_000) -> None:
        self.tokenizer = tokenizer
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.spec = spec
        self.cls_id = self._special("[CLS]")
        self.sep_id = self._special("[SEP]")
        self.pad_id = self._special("[PAD]")
        self._cache: OrderedDict[str, list[int]] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def from_file(cls, path: Path, spec: FeatureSpec) -> Featurizer:
        return cls(Tokenizer.from_file(str(path)), spec)

    def _special(self, token: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {token} token")
        return int(token_id)

    def ids(self, text: str) -> list[int]:
        """Word-piece ids of `text` without special tokens (cached)."""
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        out: list[int] = self.tokenizer.encode(text, add_special_tokens=False).ids
        self._cache[text] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def history_text(self, history: Sequence[str]) -> str:
        return HISTORY_JOIN.join(t for t in history if t)

    def pair_ids(self, query: str, history: Sequence[str], item: str) -> tuple[list[int], int]:
        """Token ids of one pair and where segment B (the item) starts."""
        spec = self.spec
        head = [self.cls_id, *self.ids(query)[: spec.query_tokens], self.sep_id]
        hist = self.ids(self.history_text(history))[: spec.history_tokens] if history else []
        if hist:
            head += [*hist, self.sep_id]
        room = spec.max_length - len(head) - 1
        return [*head, *self.ids(item)[:room], self.sep_id], len(head)

    def pairs(self, query: str, history: Sequence[str], items: Sequence[str]) -> PairBatch:
        return self.pair_batch([(query, history, item) for item in items])

    def pair_batch(self, triples: Sequence[tuple[str, Sequence[str], str]]) -> PairBatch:
        rows = [self.pair_ids(q, h, i) for q, h, i in triples]
        width = max((len(ids) for ids, _ in rows), default=2)
        n = len(rows)
        input_ids = np.full((n, width), self.pad_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        types = np.zeros((n, width), dtype=np.int64)
        for r, (ids, split) in enumerate(rows):
            input_ids[r, : len(ids)] = ids
            mask[r, : len(ids)] = 1
            types[r, split : len(ids)] = 1
        return PairBatch(input_ids, mask, types)

    def texts(self, texts: Sequence[str]) -> tuple[Ids, Ids]:
        """Text-encoder inputs: [CLS] text [SEP], cut at text_tokens, padded to the longest."""
        rows = [
            [self.cls_id, *self.ids(t)[: self.spec.text_tokens - 2], self.sep_id] for t in texts
        ]
        width = max((len(r) for r in rows), default=2)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, ids in enumerate(rows):
            input_ids[r, : len(ids)] = ids
            mask[r, : len(ids)] = 1
        return input_ids, mask
