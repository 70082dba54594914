"""The probe lists every ranker export is gated on, and the reference stored with a version.

The same fixed lists serve twice: at export, each graph variant is compared with torch eager
on them (gates.py); and the fp32 graphs' scores for them, as the serving scorer computes them,
are stored in the manifest (`probe`), so every serving machine can check a reduced-precision
variant against fp32 before serving it (scoring/variants.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from scoring.base import Manifest, ScoreRequest
from scoring.registry import ModelRegistry
from scoring.training.data import TrainingList, synthetic_lists
from scoring.training.parity import PROBE_QUERY, PROBES
from scoring.variants import FP32, ProbeList, ProbeSet

log = logging.getLogger(__name__)


def _probe_lists() -> tuple[TrainingList, ...]:
    """Fixed gate lists: synthetic searches plus edge cases (no history, long, empty, 2 items)."""
    edge_items = tuple((f"probe-{i}", text) for i, text in enumerate(PROBES))
    long_history = tuple(PROBES[2:14])  # more entries than history_items; one very long
    return (
        *synthetic_lists(5, seed=20_240_601, candidates=20, history=5),
        TrainingList(PROBE_QUERY, (), edge_items, tuple(float(i % 3) for i in range(16))),
        TrainingList("gift", long_history, edge_items[12:], (1.0, 0.0, 2.0, 0.0)),
        TrainingList("", ("shoes",), edge_items[2:4], (1.0, 0.0)),
    )


PROBE_LISTS = _probe_lists()
PROBE_LABELS = [lst.labels for lst in PROBE_LISTS]


def as_request(lst: TrainingList) -> ScoreRequest:
    return ScoreRequest(lst.query, list(lst.history), list(lst.items))


def with_probe_reference(folder: Path, manifest: Manifest) -> Manifest:
    """`manifest` with the probe set and its fp32 scores, as the serving scorer of `folder`
    computes them on this machine's CPU (each list alone, like one search)."""
    manifest.write(folder)  # provisional: the serving scorer loads the folder as it will be
    scorer = ModelRegistry(folder.parent).load(folder, device="cpu", variant=FP32)
    lists = tuple(
        ProbeList(as_request(lst), lst.labels,
                  tuple(scorer.score([as_request(lst)]).scores[0]))
        for lst in PROBE_LISTS
    )
    log.info("%s: fp32 reference stored for %d probe lists", manifest.version, len(lists))
    return replace(manifest, probe=ProbeSet(lists).to_dict())


__all__ = ["PROBE_LABELS", "PROBE_LISTS", "as_request", "with_probe_reference"]
