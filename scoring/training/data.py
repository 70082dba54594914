"""Training lists for the learned rankers: JSONL storage, validation, a synthetic generator.

One `TrainingList` is one search as the user saw it: the query, the user's recent history
(newest first), the candidates shown and a graded relevance label per candidate (purchase 3 >
add to cart 2 > click 1 > skipped 0). Listwise losses need at least one positive per list.

`synthetic_lists` builds learnable personalized lists without any stream or catalogue: each
user has a stable liked department, the query is generic ("gift ideas"), so only the history
tells which candidates are relevant. Used by tests and quick demos.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingList:
    """One search: query, history (newest first), candidates and their graded labels."""

    query: str
    history: tuple[str, ...]
    items: tuple[tuple[str, str], ...]  # (item_id, text)
    labels: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.items) != len(self.labels):
            raise ValueError(f"{len(self.items)} items but {len(self.labels)} labels")
        if not self.items:
            raise ValueError("a list needs at least one candidate")
        if not all(math.isfinite(x) and x >= 0 for x in self.labels):
            raise ValueError(f"labels must be finite and >= 0, got {self.labels}")

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.items)

    @property
    def positives(self) -> int:
        return sum(1 for x in self.labels if x > 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "history": list(self.history),
            "items": [[item_id, text] for item_id, text in self.items],
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingList:
        try:
            return cls(
                query=str(data["query"]),
                history=tuple(str(t) for t in data.get("history", ())),
                items=tuple((str(i), str(t)) for i, t in data["items"]),
                labels=tuple(float(x) for x in data["labels"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a training list: {exc!r}") from exc


def useful_lists(lists: Sequence[TrainingList]) -> list[TrainingList]:
    """The lists a listwise loss can learn from (>= 1 positive); the others are counted."""
    kept = [lst for lst in lists if lst.positives > 0]
    skipped = len(lists) - len(kept)
    if skipped:
        log.info("skipped %d lists without any positive label", skipped)
    return kept


def read_lists(path: Path, *, require_positive: bool = True) -> list[TrainingList]:
    """Lists from a JSONL file; malformed lines raise ValueError naming the line."""
    lists: list[TrainingList] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                lists.append(TrainingList.from_dict(json.loads(line)))
            except (ValueError, json.JSONDecodeError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
    return useful_lists(lists) if require_positive else lists


def write_lists(path: Path, lists: Iterable[TrainingList]) -> int:
    """Write JSONL atomically (temp file then rename); returns the number of lists."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for lst in lists:
            fh.write(json.dumps(lst.to_dict(), ensure_ascii=False) + "\n")
            count += 1
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return count


# --- synthetic, learnable lists -------------------------------------------------------------

DEPARTMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # department: (products, attributes)
    "running": (
        ("running shoes", "running socks", "running shorts", "sports watch", "hydration vest"),
        ("lightweight", "breathable", "trail", "marathon", "cushioned"),
    ),
    "kitchen": (
        ("chef knife", "cast iron skillet", "saucepan", "cutting board", "espresso machine"),
        ("stainless steel", "non-stick", "professional", "ceramic", "compact"),
    ),
    "garden": (
        ("garden hose", "pruning shears", "flower seeds", "watering can", "lawn mower"),
        ("expandable", "ergonomic", "organic", "galvanized", "cordless"),
    ),
    "baby": (
        ("baby stroller", "baby bottle", "crib mattress", "diaper bag", "teething toy"),
        ("foldable", "anti-colic", "hypoallergenic", "waterproof", "soft silicone"),
    ),
    "gaming": (
        (
            "gaming mouse",
            "mechanical keyboard",
            "gaming headset",
            "game controller",
            "gaming chair",
        ),
        ("wireless", "RGB backlit", "ergonomic", "low latency", "surround sound"),
    ),
    "pets": (
        ("dog leash", "cat litter", "dog bed", "cat scratching post", "pet food bowl"),
        ("reflective", "clumping", "orthopedic", "sisal", "stainless steel"),
    ),
}
# A purchase is likelier for the better tier: the grade is readable from the text.
TIERS: dict[str, float] = {"premium": 3.0, "popular": 2.0, "basic": 1.0}
QUERIES = (
    "gift ideas",
    "best sellers",
    "new arrivals",
    "deals of the day",
    "recommended for you",
    "top rated products",
    "something nice",
    "what to buy this week",
)


def catalogue() -> dict[str, list[tuple[str, str]]]:
    """Department -> [(item_id, text)], the synthetic catalogue (deterministic)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for dept, (products, attributes) in DEPARTMENTS.items():
        out[dept] = [
            (f"{dept}-{p}-{a}-{tier}", f"{tier} {attributes[a]} {products[p]}")
            for p in range(len(products))
            for a in range(len(attributes))
            for tier in TIERS
        ]
    return out


def item_grade(text: str) -> float:
    return TIERS[text.split(" ", 1)[0]]


def synthetic_lists(
    n: int, *, seed: int, candidates: int = 20, history: int = 5
) -> list[TrainingList]:
    """`n` lists: positives are the liked department's items, graded by their tier word.

    A user's history is items of the liked department, except that one entry may come from
    another department (noise). About a fifth of the candidates (at least one) are from the
    liked department; the rest come from the other departments.
    """
    if candidates < 2:
        raise ValueError("candidates must be >= 2")
    rng = random.Random(seed)
    cat = catalogue()
    depts = sorted(cat)
    users = [rng.choice(depts) for _ in range(max(4, n // 4))]  # a stable liked department
    lists: list[TrainingList] = []
    for _ in range(n):
        liked = rng.choice(users)
        others = [d for d in depts if d != liked]
        hist = [text for _, text in rng.sample(cat[liked], history)]
        if history >= 3 and rng.random() < 0.3:
            hist[rng.randrange(history)] = rng.choice(cat[rng.choice(others)])[1]
        n_pos = max(1, candidates // 5)
        pool = [item for d in others for item in cat[d]]
        items = rng.sample(cat[liked], n_pos) + rng.sample(pool, candidates - n_pos)
        rng.shuffle(items)
        liked_ids = {item_id for item_id, _ in cat[liked]}
        labels = tuple(item_grade(t) if i in liked_ids else 0.0 for i, t in items)
        lists.append(TrainingList(rng.choice(QUERIES), tuple(hist), tuple(items), labels))
    return lists


def department_of(text: str) -> str | None:
    """The synthetic department an item text belongs to (None for unknown texts)."""
    for dept, (products, _) in DEPARTMENTS.items():
        if any(text.endswith(p) for p in products):
            return dept
    return None
