"""Captured TrainingSamples → training lists, a time-ordered holdout and position propensities.

The worker publishes one TrainingSample per closed impression (contracts/samples.py): the
query and history the model read, the shown items in shown order with graded labels and the
behaviour features the model scored them with. Here each becomes one `CapturedList`; item
texts are not in the samples, they come from the catalog (`item_text`). numpy and contracts
only (no torch), so every piece is cheap to test.

Position bias: a user mostly looks at the top of a list, so a relevant item shown low often
goes unclicked and is labelled 0. `position_propensity` estimates, per position, how likely a
shown item is to be examined relative to position 0 (a position-based click model fitted by
EM); `ips_labels` weighs each positive within its list by 1/propensity and `list_weight` weighs
whole lists by it (docs/training.md: the choice).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contracts import DecodeError, TrainingSample, decode, encode
from scoring.training.data import TrainingList

log = logging.getLogger(__name__)

# Propensities below this are raised to it: an IPS weight is at most 1/PROPENSITY_FLOOR, so a
# single lucky click far down a list cannot dominate an evaluation.
PROPENSITY_FLOOR = 0.1
EM_ITERATIONS = 200
# Fewer repeated (user, item) impressions than this: EM has too little to separate
# examination from relevance, and the click-through by position is used instead.
MIN_EM_IMPRESSIONS = 200

ItemText = Callable[[str], str]


def no_text(item_id: str) -> str:
    return ""


@dataclass(frozen=True)
class CapturedList:
    """One published ranking as the user saw it, with what they did."""

    request_id: str
    user_id: str
    ts: int
    model_version: str
    positions: tuple[int, ...]  # shown position of each item of `ranked`, ascending
    ranked: TrainingList
    # The features the serving model scored the items with, [items, F] float32 in `ranked`'s
    # order, and the version of their spec; None when that model used none.
    features: npt.NDArray[np.float32] | None = None
    feature_spec: str | None = None

    @property
    def positives(self) -> int:
        return self.ranked.positives


@dataclass(frozen=True)
class ListStats:
    samples: int
    duplicates: int
    lists: int
    without_positive: int
    with_features: int
    feature_specs: dict[str, int]  # spec version -> lists

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def dedup(samples: Iterable[TrainingSample]) -> tuple[list[TrainingSample], int]:
    """First sample per (user_id, request_id) (at-least-once delivery to a reader, or a file
    concatenated twice, may repeat one); and the repeats."""
    seen: dict[tuple[str, str], TrainingSample] = {}
    repeats = 0
    for sample in samples:
        key = (sample.user_id, sample.request_id)
        if key in seen:
            repeats += 1
            continue
        seen[key] = sample
    return list(seen.values()), repeats


def captured_list(sample: TrainingSample, item_text: ItemText = no_text) -> CapturedList:
    """One sample as a list: items in shown order, texts from `item_text`."""
    items = sample.items
    features = None
    if sample.feature_spec is not None and items and items[0].features:
        features = np.asarray([item.features for item in items], dtype=np.float32)
    return CapturedList(
        request_id=sample.request_id,
        user_id=sample.user_id,
        ts=sample.ts,
        model_version=sample.model_version,
        positions=tuple(item.position for item in items),
        ranked=TrainingList(
            query=sample.query,
            history=tuple(sample.history),
            items=tuple((item.item_id, item_text(item.item_id)) for item in items),
            labels=tuple(float(item.label) for item in items),
        ),
        features=features,
        feature_spec=sample.feature_spec if features is not None else None,
    )


def build_lists(
    samples: Iterable[TrainingSample], item_text: ItemText = no_text
) -> tuple[list[CapturedList], ListStats]:
    """One list per sample (repeats dropped), oldest list first.

    Lists without any positive are kept (they are impressions: the click-through rate by
    position needs them); `with_positive` selects what a listwise loss can learn from.
    """
    unique, repeats = dedup(samples)
    lists = [captured_list(sample, item_text) for sample in unique]
    lists.sort(key=lambda c: (c.ts, c.request_id))
    specs = Counter(c.feature_spec for c in lists if c.feature_spec is not None)
    stats = ListStats(
        samples=len(unique) + repeats,
        duplicates=repeats,
        lists=len(lists),
        without_positive=sum(1 for c in lists if c.positives == 0),
        with_features=sum(specs.values()),
        feature_specs=dict(specs),
    )
    return lists, stats


def with_features(lists: Sequence[CapturedList], spec: str) -> list[CapturedList]:
    """The lists whose logged features follow `spec` (what a behaviour-aware model of that
    spec can learn from: features of another spec mean other things)."""
    return [c for c in lists if c.feature_spec == spec]


def with_positive(lists: Sequence[CapturedList]) -> list[CapturedList]:
    return [c for c in lists if c.positives > 0]


def holdout_split(
    lists: Sequence[CapturedList], fraction: float, *, min_holdout: int = 1
) -> tuple[list[CapturedList], list[CapturedList]]:
    """(train, held-out): the most recent `fraction` of the lists is held out.

    Split by time, not at random: the challenger is judged on searches that happened after
    everything it trained on, as it will be once it serves. Lists sharing the boundary's
    timestamp all go to the held-out side, so no held-out search predates a training one.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    ordered = sorted(lists, key=lambda c: (c.ts, c.request_id))
    n_held = max(min_holdout, round(len(ordered) * fraction))
    if n_held >= len(ordered):
        raise ValueError(f"{len(ordered)} lists are too few to hold out {n_held}")
    cut = len(ordered) - n_held
    boundary = ordered[cut].ts
    while cut > 0 and ordered[cut - 1].ts == boundary:
        cut -= 1
    return ordered[:cut], ordered[cut:]


def position_propensity(
    lists: Sequence[CapturedList],
    *,
    floor: float = PROPENSITY_FLOOR,
    iterations: int = EM_ITERATIONS,
    min_impressions: int = MIN_EM_IMPRESSIONS,
) -> npt.NDArray[np.float64]:
    """Relative examination probability per shown position (position 0 = 1.0).

    Fitted by EM under the position-based click model, P(click) = theta[position] *
    gamma[user, item], on the (user, item) pairs shown at two or more different positions:
    the same user and item at different positions is what separates "not seen" from "not
    wanted" (a pair seen once fits any theta and would pull it to 1). Made non-increasing
    with depth and floored. With too few such impressions it falls back to the click-through
    rate by position relative to position 0, which overstates the drop-off because the
    logging model puts good items high (docs/training.md compares the two).
    """
    depth = 1 + max((p for c in lists for p in c.positions), default=-1)
    if depth == 0:
        return np.ones(0)
    seen: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for c in lists:
        for (item_id, _), pos, label in zip(c.ranked.items, c.positions, c.ranked.labels,
                                            strict=True):
            seen[(c.user_id, item_id)].append((pos, float(label > 0)))
    pairs = [v for v in seen.values() if len({p for p, _ in v}) > 1]
    n = sum(len(v) for v in pairs)
    clicks = sum(y for v in pairs for _, y in v)
    if n >= min_impressions and clicks > 0:
        theta = _pbm_em(pairs, depth, iterations)
    else:
        log.info("propensity: %d repeated impressions; using click-through by position", n)
        theta = _ctr_by_position(lists, depth)
    if theta[0] <= 0:
        return np.ones(depth)
    relative = np.minimum.accumulate(np.minimum(theta / theta[0], 1.0))
    return np.maximum(relative, floor)


def _pbm_em(
    pairs: Sequence[Sequence[tuple[int, float]]], depth: int, iterations: int
) -> npt.NDArray[np.float64]:
    """Examination per position from EM on the position-based model (clicks 0/1)."""
    pos = np.array([p for v in pairs for p, _ in v])
    click = np.array([y for v in pairs for _, y in v])
    pair = np.repeat(np.arange(len(pairs)), [len(v) for v in pairs])
    per_pos = np.maximum(np.bincount(pos, minlength=depth), 1)
    per_pair = np.bincount(pair, minlength=len(pairs))
    theta, gamma = np.full(depth, 0.5), np.full(len(pairs), 0.5)
    for _ in range(iterations):
        t, g = theta[pos], gamma[pair]
        unclicked = np.maximum(1.0 - t * g, 1e-12)
        # A click means examined and relevant; no click splits between the two explanations.
        examined = np.where(click > 0, 1.0, t * (1.0 - g) / unclicked)
        relevant = np.where(click > 0, 1.0, (1.0 - t) * g / unclicked)
        theta = np.bincount(pos, examined, depth) / per_pos
        gamma = np.bincount(pair, relevant, len(pairs)) / per_pair
    return theta


def _ctr_by_position(lists: Sequence[CapturedList], depth: int) -> npt.NDArray[np.float64]:
    shown = np.zeros(depth)
    clicked = np.zeros(depth)
    for c in lists:
        for pos, label in zip(c.positions, c.ranked.labels, strict=True):
            shown[pos] += 1
            clicked[pos] += label > 0
    return np.divide(clicked, shown, out=np.zeros(depth), where=shown > 0)


def ips_labels(c: CapturedList, propensity: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Labels whose NDCG gain (2**label - 1) is the plain gain divided by the propensity of the
    position the item was shown at, so scoring.quality's NDCG becomes the IPS-weighted one.
    Positions beyond the estimate take its last (lowest) value."""
    labels = np.asarray(c.ranked.labels, dtype=np.float64)
    if len(propensity) == 0:
        return labels
    idx = np.minimum(np.asarray(c.positions), len(propensity) - 1)
    gains = (2.0**labels - 1.0) / propensity[idx]
    return np.asarray(np.log2(1.0 + gains), dtype=np.float64)


def list_weight(c: CapturedList, propensity: npt.NDArray[np.float64]) -> float:
    """How many searches this labelled list stands for: the mean 1/propensity of its
    positives' shown positions (1.0 without positives). A list whose click sat where users
    look half the time stands for two: the other went unclicked and fell out of the data."""
    if len(propensity) == 0:
        return 1.0
    weights = [1.0 / propensity[min(p, len(propensity) - 1)]
               for p, y in zip(c.positions, c.ranked.labels, strict=True) if y > 0]
    return float(np.mean(weights)) if weights else 1.0


# --- JSONL files of samples -------------------------------------------------------------------


def read_samples_file(path: Path) -> list[TrainingSample]:
    """TrainingSamples from a JSONL file (one JSON object per line, as on the topic)."""
    samples: list[TrainingSample] = []
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                samples.append(decode(line.strip(), TrainingSample))
            except DecodeError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
    return samples


def write_samples_file(path: Path, samples: Iterable[TrainingSample]) -> int:
    """Write samples as JSONL (temp file then rename); returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with open(tmp, "wb") as fh:
        for sample in samples:
            fh.write(encode(sample) + b"\n")
            count += 1
    tmp.replace(path)
    return count


__all__ = [
    "PROPENSITY_FLOOR",
    "CapturedList",
    "ItemText",
    "ListStats",
    "build_lists",
    "captured_list",
    "dedup",
    "holdout_split",
    "ips_labels",
    "list_weight",
    "position_propensity",
    "read_samples_file",
    "with_features",
    "with_positive",
    "write_samples_file",
]
