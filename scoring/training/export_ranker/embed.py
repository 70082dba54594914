"""Export a text encoder + personalized head as a gated registry version (`embed`).

int8/fp16 convert the encoder only (the head is small). head.pt is saved, and encoder.pt only
when the encoder differs from the base MiniLM, so fine-tuning can continue from the version.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scoring.base import HEAD_STATE_FILE, TOKENIZER_FILE, Manifest, sha256_file
from scoring.features import FeatureSpec, Featurizer
from scoring.training.eager import embed_scorer
from scoring.training.export_ranker.gates import (
    FP32_TOLERANCE,
    embed_runs,
    gate_variants,
    ort_encode,
)
from scoring.training.export_ranker.graphs import export_graph, session
from scoring.training.export_ranker.probes import PROBE_LISTS
from scoring.training.export_ranker.staging import build_manifest, install_version, staging
from scoring.training.layout import Layout, encode
from scoring.training.models import EmbedHead, base_encoder, base_model_path
from scoring.training.parity import ParityError
from scoring.training.reference import SentenceEmbedder


def _encoder_is_base(encoder: SentenceEmbedder) -> bool:
    base = base_encoder().state_dict()
    return all(torch.equal(v.cpu(), base[k]) for k, v in encoder.state_dict().items())


def _encoder_parity(enc: SentenceEmbedder, graph: Path, featurizer: Featurizer) -> float:
    """Max |torch - ORT| over the probe texts' embeddings; ParityError beyond tolerance."""
    texts = Layout.of(PROBE_LISTS, featurizer.spec).texts
    with torch.no_grad():
        want = encode(enc, featurizer, texts).numpy()
    diff = float(np.abs(want - ort_encode(session(graph), featurizer, texts)).max())
    if diff > FP32_TOLERANCE["embed"]:
        raise ParityError(f"export refused: encoder embeddings differ by {diff:.2e}")
    return round(diff, 9)


def export_embed(
    encoder: SentenceEmbedder,
    head: EmbedHead,
    out_dir: Path | None = None,
    *,
    models_dir: Path | None = None,
    spec: FeatureSpec | None = None,
    metrics: Mapping[str, Any] | None = None,
    parent: str = "",
    variants: Sequence[str] = ("int8", "fp16"),
) -> Manifest:
    """Export text encoder + personalized head as a gated version (int8/fp16: encoder only).

    Raises ParityError when the fp32 graphs disagree with torch; nothing is installed then.
    """
    spec = spec or FeatureSpec()
    enc = copy.deepcopy(encoder).cpu().eval()
    hd = copy.deepcopy(head).cpu().eval()
    featurizer = Featurizer.from_file(base_model_path() / TOKENIZER_FILE, spec)
    started = time.perf_counter()
    with staging(out_dir, models_dir, "embed") as tmp:
        ids, mask = featurizer.texts(["a short probe", "a somewhat longer probe for tracing"])
        args = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        axes = {k: {0: "batch", 1: "sequence"} for k in args}
        opset = export_graph(enc, args, axes, "embedding", tmp / "encoder.onnx")
        # Sizes of 1 would be specialized away by torch.export: trace with B=2, H>=2, C=20.
        lay = Layout.of(PROBE_LISTS[:2], replace(spec, history_items=max(2, spec.history_items)))
        with torch.no_grad():
            head_args = lay.gather(encode(enc, featurizer, lay.texts))
        head_axes = {
            "query": {0: "batch"},
            "history": {0: "batch", 1: "history"},
            "history_mask": {0: "batch", 1: "history"},
            "items": {0: "batch", 1: "candidates"},
        }
        export_graph(hd, head_args, head_axes, "scores", tmp / "head.onnx")
        exported = time.perf_counter() - started
        torch.save(hd.state_dict(), tmp / HEAD_STATE_FILE)
        if not _encoder_is_base(enc):
            torch.save(enc.state_dict(), tmp / "encoder.pt")
        shutil.copyfile(base_model_path() / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        encoder_diff = _encoder_parity(enc, tmp / "encoder.onnx", featurizer)
        score = embed_scorer(enc, hd, featurizer)
        want = [np.asarray(score(x)) for x in PROBE_LISTS]
        graphs = {"encoder": "encoder.onnx", "head": "head.onnx"}
        shipped, notes, _ = gate_variants(
            tmp, graphs, embed_runs(featurizer), want, FP32_TOLERANCE["embed"], variants,
            ["encoder"],
        )
        shipped["fp32"]["parity"]["encoder_max_abs_diff"] = encoder_diff
        notes["seconds"]["fp32_export"] = round(exported, 2)
        joined = sha256_file(tmp / "encoder.onnx") + sha256_file(tmp / "head.onnx")
        manifest = build_manifest(
            tmp, kind="embed", version_hash=hashlib.sha256(joined.encode()).hexdigest(),
            dim=hd.dim, max_length=spec.text_tokens, opset=opset, spec_dict=spec.to_dict(),
            shipped=shipped, metrics={**(metrics or {}), "export": notes}, parent=parent,
            started=started, parity=shipped["fp32"]["parity"],
        )
        install_version(tmp, manifest, out_dir, models_dir)
    return manifest


__all__ = ["export_embed"]
