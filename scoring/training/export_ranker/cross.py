"""Export a cross-encoder as a gated registry version (docs/models.md, `cross`).

The torch weights (cross.pt) are saved next to the graph so that fine-tuning can continue
from a served version (`train_cross(init=...)`).
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scoring.base import TOKENIZER_FILE, Manifest, sha256_file
from scoring.features import FeatureSpec, Featurizer
from scoring.training.eager import cross_scorer
from scoring.training.export_ranker.gates import (
    FP32_TOLERANCE,
    cross_runs,
    gate_variants,
    pair_feed,
)
from scoring.training.export_ranker.graphs import export_graph
from scoring.training.export_ranker.probes import PROBE_LISTS
from scoring.training.export_ranker.staging import build_manifest, install_version, staging
from scoring.training.models import CrossRanker, base_model_path, hidden_size


def export_cross(
    model: CrossRanker,
    out_dir: Path | None = None,
    *,
    models_dir: Path | None = None,
    spec: FeatureSpec | None = None,
    metrics: Mapping[str, Any] | None = None,
    parent: str = "",
    variants: Sequence[str] = ("int8", "fp16"),
) -> Manifest:
    """Export a cross-encoder (a CPU copy of `model` in eval mode) as a gated version.

    Raises ParityError when the fp32 graph disagrees with torch; nothing is installed then.
    """
    spec = spec or FeatureSpec()
    module = copy.deepcopy(model).cpu().eval()
    featurizer = Featurizer.from_file(base_model_path() / TOKENIZER_FILE, spec)
    started = time.perf_counter()
    with staging(out_dir, models_dir, "cross") as tmp:
        lst = PROBE_LISTS[0]
        pb = featurizer.pairs(lst.query, lst.history, lst.texts)
        args = {k: torch.from_numpy(v) for k, v in pair_feed(pb).items()}
        axes = {k: {0: "batch", 1: "sequence"} for k in args}
        opset = export_graph(module, args, axes, "logits", tmp / "cross.onnx")
        exported = time.perf_counter() - started
        torch.save(module.state_dict(), tmp / "cross.pt")
        shutil.copyfile(base_model_path() / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        want = [np.asarray(cross_scorer(module, featurizer)(x)) for x in PROBE_LISTS]
        shipped, notes, fp32 = gate_variants(
            tmp, {"cross": "cross.onnx"}, cross_runs(featurizer), want,
            FP32_TOLERANCE["cross"], variants, ["cross"],
        )
        notes["seconds"]["fp32_export"] = round(exported, 2)
        manifest = build_manifest(
            tmp, kind="cross", version_hash=sha256_file(tmp / "cross.onnx"),
            dim=hidden_size(module.bert), max_length=spec.max_length, opset=opset,
            spec_dict=spec.to_dict(), shipped=shipped, metrics={**(metrics or {}), "export": notes},
            parent=parent, started=started, parity=fp32.as_dict(),
        )
        install_version(tmp, manifest, out_dir, models_dir)
    return manifest


__all__ = ["export_cross"]
