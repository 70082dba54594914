"""Export a hybrid ranker (text encoder + behaviour graph + neighbours) as a gated version.

Files: encoder.onnx (and encoder.int8.onnx when it passes its gate; the behaviour graph stays
fp32: it is small), hybrid.onnx, tokenizer.json, neighbours.npz, hybrid.pt (weights and
config, to continue training from this version), encoder.pt when the encoder was fine-tuned.
Manifest features: the text FeatureSpec plus "behaviour": the BehaviourSpec.

Gate: the fp32 graphs against torch eager on the probe lists, each with a fixed feature matrix
drawn around the model's own feature scale; scores must agree within a RELATIVE tolerance
(|onnx - torch| <= REL_TOLERANCE * max(1, max |torch score|): the features' scale makes
absolute float32 error grow with the scores) with the same ranking, and the explanation parts
must add up to the score (|scores - contributions.sum - deep| within the same tolerance).

API:
    export_hybrid(encoder, model, spec, neighbours, models_dir=..., metrics=..., parent=...)
        -> Manifest
    load_hybrid(path) -> (encoder, model, spec, neighbours)   a version's torch side
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

from scoring.base import TOKENIZER_FILE, Manifest, ModelError, sha256_file
from scoring.behaviour_spec import BehaviourSpec
from scoring.features import FeatureSpec, Featurizer
from scoring.hybrid import GRAPH, INPUTS, OUTPUTS, behaviour_spec
from scoring.neighbours import NEIGHBOURS_FILE, Neighbours
from scoring.training.data import TrainingList
from scoring.training.export_ranker.gates import gate_variants, ort_encode
from scoring.training.export_ranker.graphs import Floats, export_graph, run, session
from scoring.training.export_ranker.probes import PROBE_LISTS
from scoring.training.export_ranker.staging import build_manifest, install_version, staging
from scoring.training.hybrid_model import HybridRanker
from scoring.training.layout import Layout, encode
from scoring.training.models import base_encoder, base_model_path
from scoring.training.parity import ParityError
from scoring.training.reference import SentenceEmbedder

KIND = "hybrid"
STATE_FILE = "hybrid.pt"
ENCODER_STATE = "encoder.pt"
REL_TOLERANCE = 1e-4


def probe_features(model: HybridRanker, lists: Sequence[TrainingList]) -> list[Floats]:
    """A fixed feature matrix per probe list, around the model's feature mean and scale."""
    mean, scale = model.mean.numpy(), model.scale.numpy()
    out = []
    for i, lst in enumerate(lists):
        rng = np.random.default_rng(20_240_700 + i)
        x = rng.standard_normal((len(lst.items), model.n_features)) * 1.5 * scale + mean
        out.append(x.astype(np.float32))
    return out


def _inputs(lay: Layout, table: torch.Tensor, feats: Sequence[Floats]) -> dict[str, torch.Tensor]:
    head = lay.gather(table)
    b, c = lay.items.shape
    x = np.zeros((b, c, feats[0].shape[1]), np.float32)
    for r, f in enumerate(feats):
        x[r, : len(f)] = f
    return {"features": torch.from_numpy(x), "item_mask": torch.from_numpy(lay.item_mask),
            **head}


def _torch_outputs(encoder: SentenceEmbedder, model: HybridRanker, featurizer: Featurizer,
                   lst: TrainingList, feats: Floats) -> list[Floats]:
    lay = Layout.of([lst], featurizer.spec)
    with torch.no_grad():
        out = model(**_inputs(lay, encode(encoder, featurizer, lay.texts), [feats]))
    return [o.numpy()[0] for o in out]


def _runs(featurizer: Featurizer, feats: Sequence[Floats]) -> Any:
    def runs(graphs: Mapping[str, Path], provider: str) -> list[dict[int, Floats]]:
        enc, head = session(graphs["encoder"], provider), session(graphs[GRAPH], provider)

        def scores(idx: Sequence[int]) -> dict[int, Floats]:
            lay = Layout.of([PROBE_LISTS[i] for i in idx], featurizer.spec)
            table = torch.from_numpy(ort_encode(enc, featurizer, lay.texts))
            feed = {k: v.numpy() for k, v in _inputs(lay, table, [feats[i] for i in idx]).items()}
            got = run(head, feed)
            return {i: got[r, : len(PROBE_LISTS[i].items)] for r, i in enumerate(idx)}

        alone: dict[int, Floats] = {}
        for i in range(len(PROBE_LISTS)):
            alone |= scores([i])
        return [alone, scores(range(len(PROBE_LISTS)))]

    return runs


def _additivity(graph: Path, featurizer: Featurizer, enc_graph: Path,
                feats: Sequence[Floats]) -> float:
    """Max |scores - (contributions.sum + deep)| over the probe lists' real candidates."""
    lay = Layout.of(PROBE_LISTS, featurizer.spec)
    table = torch.from_numpy(ort_encode(session(enc_graph), featurizer, lay.texts))
    feed = {k: v.numpy() for k, v in _inputs(lay, table, feats).items()}
    scores, _, contributions, deep = session(graph).run(list(OUTPUTS), feed)
    gap = np.abs(scores - (contributions.astype(np.float64).sum(-1) + deep)) * lay.item_mask
    return float(gap.max())


def export_hybrid(
    encoder: SentenceEmbedder,
    model: HybridRanker,
    spec: BehaviourSpec,
    neighbours: Neighbours,
    out_dir: Path | None = None,
    *,
    models_dir: Path | None = None,
    text_spec: FeatureSpec | None = None,
    metrics: Mapping[str, Any] | None = None,
    parent: str = "",
    variants: Sequence[str] = ("int8", "fp16"),
) -> Manifest:
    """Raises ParityError when the fp32 graphs disagree with torch; nothing is installed."""
    if model.n_features != spec.size:
        raise ValueError(f"the model reads {model.n_features} features, the spec names "
                         f"{spec.size}")
    if not (model.use_text and model.use_features):
        raise ValueError("only a hybrid with text and features is served")
    text_spec = text_spec or FeatureSpec()
    enc = copy.deepcopy(encoder).cpu().eval()
    hd = copy.deepcopy(model).cpu().eval()
    featurizer = Featurizer.from_file(base_model_path() / TOKENIZER_FILE, text_spec)
    started = time.perf_counter()
    with staging(out_dir, models_dir, KIND) as tmp:
        ids, mask = featurizer.texts(["a short probe", "a somewhat longer probe for tracing"])
        args = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        opset = export_graph(enc, args, {k: {0: "batch", 1: "sequence"} for k in args},
                             "embedding", tmp / "encoder.onnx")
        # Sizes of 1 would be specialized away by torch.export: trace with B=2, H>=2, C=20.
        lay = Layout.of(PROBE_LISTS[:2], replace(text_spec,
                                                 history_items=max(2, text_spec.history_items)))
        feats = probe_features(hd, PROBE_LISTS)
        with torch.no_grad():
            trace = _inputs(lay, encode(enc, featurizer, lay.texts), feats[:2])
        axes = {"features": {0: "batch", 1: "candidates"}, "item_mask": {0: "batch",
                1: "candidates"}, "query": {0: "batch"}, "history": {0: "batch", 1: "history"},
                "history_mask": {0: "batch", 1: "history"},
                "items": {0: "batch", 1: "candidates"}}
        export_graph(hd, {k: trace[k] for k in INPUTS}, axes, OUTPUTS, tmp / f"{GRAPH}.onnx")
        exported = time.perf_counter() - started
        torch.save({"config": hd.config(), "state": hd.state_dict()}, tmp / STATE_FILE)
        if not _encoder_is_base(enc):
            torch.save(enc.state_dict(), tmp / ENCODER_STATE)
        shutil.copyfile(base_model_path() / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        neighbours.save(tmp / NEIGHBOURS_FILE)
        want = [_torch_outputs(enc, hd, featurizer, lst, f)[0]
                for lst, f in zip(PROBE_LISTS, feats, strict=True)]
        tolerance = REL_TOLERANCE * max(1.0, max(float(np.abs(w).max()) for w in want))
        graphs = {"encoder": "encoder.onnx", GRAPH: f"{GRAPH}.onnx"}
        shipped, notes, _ = gate_variants(tmp, graphs, _runs(featurizer, feats), want,
                                          tolerance, variants, ["encoder"])
        gap = _additivity(tmp / f"{GRAPH}.onnx", featurizer, tmp / "encoder.onnx", feats)
        if gap > tolerance:
            raise ParityError(f"export refused: explanation parts miss the score by {gap:.2e}")
        shipped["fp32"]["parity"] |= {"relative_tolerance": REL_TOLERANCE,
                                      "tolerance": tolerance, "explanation_gap": gap}
        notes["seconds"]["fp32_export"] = round(exported, 2)
        joined = "".join(sha256_file(tmp / n) for n in ("encoder.onnx", f"{GRAPH}.onnx",
                                                        NEIGHBOURS_FILE))
        manifest = build_manifest(
            tmp, kind=KIND, version_hash=hashlib.sha256(joined.encode()).hexdigest(),
            dim=hd.dim, max_length=text_spec.text_tokens, opset=opset,
            spec_dict={**text_spec.to_dict(), "behaviour": spec.to_dict()}, shipped=shipped,
            metrics={**(metrics or {}), "export": notes,
                     "neighbours": {"items": len(neighbours), "edges": neighbours.edges}},
            parent=parent, started=started, parity=shipped["fp32"]["parity"],
        )
        install_version(tmp, manifest, out_dir, models_dir)
    return manifest


def _encoder_is_base(encoder: SentenceEmbedder) -> bool:
    base = base_encoder().state_dict()
    return all(torch.equal(v.cpu(), base[k]) for k, v in encoder.state_dict().items())


def load_hybrid(path: Path) -> tuple[SentenceEmbedder, HybridRanker, BehaviourSpec, Neighbours]:
    """The torch side of an exported hybrid version (to continue training from it)."""
    manifest = Manifest.load(path)
    manifest.verify(path)
    if manifest.kind != KIND:
        raise ModelError(f"{path}: a {manifest.kind} version, not {KIND}")
    saved = torch.load(path / STATE_FILE, weights_only=True)
    model = HybridRanker.from_state(saved["config"], saved["state"])
    encoder = base_encoder()
    if (path / ENCODER_STATE).is_file():
        encoder.load_state_dict(torch.load(path / ENCODER_STATE, weights_only=True))
    return (encoder, model.eval(), behaviour_spec(manifest.features, str(path)),
            Neighbours.load(path / NEIGHBOURS_FILE))


__all__ = ["REL_TOLERANCE", "STATE_FILE", "export_hybrid", "load_hybrid", "probe_features"]
