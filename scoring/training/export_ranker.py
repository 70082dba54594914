"""Export the learned rankers (`cross`, `embed`, `cascade`) as versions of the model registry.

Contract: docs/models.md. Every export writes a temporary sibling folder, gates it, writes a
manifest covering every file and only then renames it into place. The torch weights (cross.pt,
head.pt, encoder.pt when the encoder was fine-tuned) are saved next to the graphs so that
fine-tuning can continue from a served version (`train_cross(init=...)`).

Where a version goes: `out_dir` if given, else `models_dir/<version>` (exactly one of them).

onnxruntime is used here only for export-time work: int8 quantization, fp16 conversion and the
parity gates that run each graph next to torch. Serving loads the graphs in scoring/.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from scoring.base import MANIFEST_FILE, Manifest, ModelError, load_verified, sha256_file
from scoring.features import FeatureSpec, Featurizer
from scoring.training.data import TrainingList, synthetic_lists
from scoring.training.export import (
    MAX_POSITIONS,
    _install,
    _quiet_exporter_logs,
    _remove_stale_temps,
    _versions,
)
from scoring.training.fit import Layout, cross_scorer, embed_scorer, encode
from scoring.training.models import (
    CrossRanker,
    EmbedHead,
    base_encoder,
    base_model_path,
    hidden_size,
)
from scoring.training.parity import PROBE_QUERY, PROBES, ParityError
from scoring.training.reference import SentenceEmbedder

log = logging.getLogger(__name__)

Kind = Literal["embed", "cross", "cascade"]
Floats = npt.NDArray[np.float32]
TOKENIZER = "tokenizer.json"
FP32_TOLERANCE = {"cross": 1e-3, "embed": 1e-4}
# Reduced-precision gates (int8, fp16) judge the ranking a user would see, not exact order:
# Kendall tau ignores pairs torch itself scores within TIE_FRACTION of the list's score range
# (dynamic int8 noise flips such near-ties among irrelevant candidates), the top 10 must
# mostly stay, and NDCG@10 on the labelled probe lists may barely move.
MIN_TAU, MIN_TOP, TOP_K = 0.85, 0.8, 10
TIE_FRACTION = 0.02
MAX_NDCG_DROP, MAX_MEAN_NDCG_DROP = 0.05, 0.01
NO_GPU = "not checked (no GPU)"
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


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


# --- agreement between two scorings of the same lists ---------------------------------------


def kendall_tau(a: Floats, b: Floats) -> float:
    """Kendall's tau-b of two score vectors (1.0 for fewer than two items)."""
    if len(a) < 2:
        return 1.0
    iu = np.triu_indices(len(a), k=1)
    da = np.sign(a[:, None] - a[None, :])[iu]
    db = np.sign(b[:, None] - b[None, :])[iu]
    denom = np.sqrt(float(np.count_nonzero(da)) * float(np.count_nonzero(db)))
    return float((da * db).sum() / denom) if denom else 1.0


def kendall_tau_clear(a: Floats, b: Floats, tie_fraction: float = TIE_FRACTION) -> float:
    """Kendall's tau over the pairs `a` (the reference) tells apart by more than
    `tie_fraction` of its score range; 1.0 when no pair is that clear."""
    if len(a) < 2:
        return 1.0
    iu = np.triu_indices(len(a), k=1)
    dw = (a[:, None] - a[None, :])[iu]
    dg = (b[:, None] - b[None, :])[iu]
    clear = np.abs(dw) > tie_fraction * float(np.ptp(a))
    if not clear.any():
        return 1.0
    return float((np.sign(dw[clear]) * np.sign(dg[clear])).mean())


def ndcg_at(scores: Floats, labels: Sequence[float], k: int = TOP_K) -> float:
    gains = 2.0 ** np.asarray(labels, dtype=np.float64) - 1.0
    ideal = np.sort(gains)[::-1][:k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    best = float((ideal * discounts[: len(ideal)]).sum())
    if best <= 0:
        return 1.0
    got = gains[np.argsort(-scores, kind="stable")][:k]
    return float((got * discounts[: len(got)]).sum()) / best


def top_overlap(a: Floats, b: Floats, k: int = TOP_K) -> float:
    n = min(k, len(a))
    top_a = set(np.argsort(-a, kind="stable")[:n].tolist())
    return len(top_a & set(np.argsort(-b, kind="stable")[:n].tolist())) / n


@dataclass(frozen=True)
class Agreement:
    """How a graph's scores compare with torch eager on the probe lists."""

    max_abs_diff: float
    mean_abs_diff: float
    min_tau: float
    mean_tau: float
    min_top10: float
    # Pairs closer than the fp32 tolerance in torch count as ties.
    ranking_identical: bool
    lists: int
    # Tau over the pairs torch clearly orders (see TIE_FRACTION), and NDCG@10 lost against
    # torch on the probe lists' labels.
    min_clear_tau: float = 1.0
    mean_clear_tau: float = 1.0
    max_ndcg_drop: float = 0.0
    mean_ndcg_drop: float = 0.0

    @classmethod
    def of(
        cls,
        want: Sequence[Floats],
        got: Mapping[int, Floats],
        tie: float,
        labels: Sequence[Sequence[float]] | None = None,
    ) -> Agreement:
        """`got` holds some (or all) of the lists `want` scores, by index; with the lists'
        `labels`, the NDCG@10 each scoring loses against torch is measured too."""
        pairs = [(want[i], g) for i, g in sorted(got.items())]
        diffs = np.concatenate([np.abs(w - g) for w, g in pairs])
        taus = [kendall_tau(w, g) for w, g in pairs]
        clear_taus = [kendall_tau_clear(w, g) for w, g in pairs]
        drops = [
            ndcg_at(want[i], labels[i]) - ndcg_at(g, labels[i]) for i, g in sorted(got.items())
        ] if labels is not None else []
        return cls(
            max_abs_diff=float(diffs.max()),
            mean_abs_diff=float(diffs.mean()),
            min_tau=min(taus),
            mean_tau=float(np.mean(taus)),
            min_top10=min(top_overlap(w, g) for w, g in pairs),
            ranking_identical=all(_same_order(w, g, tie) for w, g in pairs),
            lists=len(pairs),
            min_clear_tau=min(clear_taus),
            mean_clear_tau=float(np.mean(clear_taus)),
            max_ndcg_drop=max(drops, default=0.0),
            mean_ndcg_drop=float(np.mean(drops)) if drops else 0.0,
        )

    def passes_fp32(self, tolerance: float) -> bool:
        return self.max_abs_diff <= tolerance and self.ranking_identical

    def passes_ranking(self) -> bool:
        return (
            # Mean, not min: on the 2- and 4-item edge lists one flip moves tau by 0.5-1.
            self.mean_clear_tau >= MIN_TAU
            and self.min_top10 >= MIN_TOP
            and self.max_ndcg_drop <= MAX_NDCG_DROP
            and self.mean_ndcg_drop <= MAX_MEAN_NDCG_DROP
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 7) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _same_order(want: Floats, got: Floats, tie: float) -> bool:
    dw = want[:, None] - want[None, :]
    dg = got[:, None] - got[None, :]
    clear = np.abs(dw) > tie
    return bool((np.sign(dw[clear]) == np.sign(dg[clear])).all())


def _worst(*runs: Agreement) -> Agreement:
    """The per-field worst of several runs (per list and batched, as served)."""
    return Agreement(
        max_abs_diff=max(r.max_abs_diff for r in runs),
        mean_abs_diff=max(r.mean_abs_diff for r in runs),
        min_tau=min(r.min_tau for r in runs),
        mean_tau=min(r.mean_tau for r in runs),
        min_top10=min(r.min_top10 for r in runs),
        ranking_identical=all(r.ranking_identical for r in runs),
        lists=max(r.lists for r in runs),
        min_clear_tau=min(r.min_clear_tau for r in runs),
        mean_clear_tau=min(r.mean_clear_tau for r in runs),
        max_ndcg_drop=max(r.max_ndcg_drop for r in runs),
        mean_ndcg_drop=max(r.mean_ndcg_drop for r in runs),
    )


# --- ONNX graphs ------------------------------------------------------------------------------


def _export_graph(
    module: torch.nn.Module,
    args: Mapping[str, torch.Tensor],
    axes: Mapping[str, Mapping[int, str]],
    output: str,
    path: Path,
) -> int:
    """Export with dynamic axes (named per input), name the output; returns the opset."""
    dims: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    for name in args:
        spec = {}
        for axis, dim in axes.get(name, {}).items():
            top = MAX_POSITIONS if dim == "sequence" else 65536
            shared.setdefault(dim, torch.export.Dim(dim, min=1, max=top))
            spec[axis] = shared[dim]
        dims[name] = spec
    _quiet_exporter_logs()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=r".*axis name.*will not be used")
        program = torch.onnx.export(
            module,
            tuple(args.values()),
            dynamo=True,
            input_names=list(args),
            dynamic_shapes=dims,
            verbose=False,
        )
    if program is None:
        raise ModelError("torch.onnx.export returned no ONNX program")
    graph = program.model.graph
    out = graph.outputs[0]
    for node in graph:
        node.metadata_props.clear()  # stack traces differ per run: drop them for stable bytes
        for value in node.outputs:
            value.metadata_props.clear()
            if value.name == output and value is not out:
                value.name = f"{output}_inner"  # a duplicate name makes the model invalid
    out.name = output
    program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _quantize(src: Path, dst: Path) -> None:
    model = onnx.load(str(src))
    # The exporter's shape annotations trip the quantizer's own shape inference; it redoes them.
    del model.graph.value_info[:]
    root = logging.getLogger()
    root.addFilter(_quantizer_chatter)
    try:
        quantize_dynamic(model, dst, per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(_quantizer_chatter)


def _quantizer_chatter(record: logging.LogRecord) -> bool:
    """Drop the quantizer's per-node lines, logged on the root logger (nothing to act on)."""
    return "onnxruntime" not in Path(record.pathname).parts


def _to_fp16(src: Path, dst: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def _gpu() -> bool:
    # onnxruntime-gpu lists CUDA even without a GPU; torch asks the driver.
    return CUDA in ort.get_available_providers() and torch.cuda.is_available()


def _session(path: Path, provider: str = CPU) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=[provider])
    if session.get_providers()[0] != provider:
        raise ModelError(f"{path}: ONNX Runtime did not take {provider}")
    return session


def _run(session: ort.InferenceSession, feed: Mapping[str, Any]) -> Floats:
    return np.asarray(session.run(None, dict(feed))[0], dtype=np.float32)


# --- graph scorers: ONNX Runtime over the probe lists, per list and batched -----------------


# Each run maps probe-list index -> scores; one run per list, one batched as served.
Runs = Callable[[Mapping[str, Path], str], list[dict[int, Floats]]]
# Batched together as serving would (the two 128-token edge lists only alone: padding all to
# 128 tokens would cost more than it checks).
BATCHED = (0, 1, 2, 3, 4, 7)


def _cross_runs(featurizer: Featurizer) -> Runs:
    def runs(graphs: Mapping[str, Path], provider: str) -> list[dict[int, Floats]]:
        session = _session(graphs["cross"], provider)
        per_list = {}
        for i, lst in enumerate(PROBE_LISTS):
            pb = featurizer.pairs(lst.query, lst.history, lst.texts)
            per_list[i] = _run(session, _pair_feed(pb))
        lists = [PROBE_LISTS[i] for i in BATCHED]
        triples = [(x.query, x.history, t) for x in lists for t in x.texts]
        flat = _run(session, _pair_feed(featurizer.pair_batch(triples)))
        parts = np.split(flat, np.cumsum([len(x.items) for x in lists])[:-1])
        return [per_list, dict(zip(BATCHED, parts, strict=True))]

    return runs


def _pair_feed(pb: Any) -> dict[str, Any]:
    return {
        "input_ids": pb.input_ids,
        "attention_mask": pb.attention_mask,
        "token_type_ids": pb.token_type_ids,
    }


def _ort_encode(session: ort.InferenceSession, featurizer: Featurizer, texts: list[str]) -> Floats:
    out = np.zeros((len(texts), 0), dtype=np.float32)
    for start in range(0, len(texts), 16):
        ids, mask = featurizer.texts(texts[start : start + 16])
        part = _run(session, {"input_ids": ids, "attention_mask": mask})
        out = part if start == 0 else np.concatenate([out, part])
    return out


def _embed_runs(featurizer: Featurizer) -> Runs:
    def runs(graphs: Mapping[str, Path], provider: str) -> list[dict[int, Floats]]:
        encoder, head = _session(graphs["encoder"], provider), _session(graphs["head"], provider)
        lay = Layout.of(PROBE_LISTS, featurizer.spec)  # the head is cheap: batch all lists
        table = torch.from_numpy(_ort_encode(encoder, featurizer, lay.texts))
        batched = _run(head, {k: v.numpy() for k, v in lay.gather(table).items()})
        per_list = {}
        for i, lst in enumerate(PROBE_LISTS):
            one = Layout.of([lst], featurizer.spec)
            rows = torch.from_numpy(_ort_encode(encoder, featurizer, one.texts))
            per_list[i] = _run(head, {k: v.numpy() for k, v in one.gather(rows).items()})[0]
        together = {i: batched[i, : len(x.items)] for i, x in enumerate(PROBE_LISTS)}
        return [per_list, together]

    return runs


# --- the exports ------------------------------------------------------------------------------


@contextlib.contextmanager
def _staging(out_dir: Path | None, models_dir: Path | None, kind: str) -> Iterator[Path]:
    """A private temporary folder beside the destination, removed unless installed."""
    if (out_dir is None) == (models_dir is None):
        raise ValueError("give exactly one of out_dir and models_dir")
    root = Path(out_dir).parent if out_dir is not None else Path(models_dir or ".")
    name = Path(out_dir).name if out_dir is not None else kind
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(root / name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the worker may run as another user
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a no-op once installed (renamed away)


def _install_version(
    tmp: Path, manifest: Manifest, out_dir: Path | None, models_dir: Path | None
) -> Path:
    manifest.write(tmp)
    load_verified(tmp)  # what readers will check, checked before anyone can see it
    target = Path(out_dir) if out_dir is not None else Path(models_dir or ".") / manifest.version
    _install(tmp, target)
    log.info("installed %s at %s", manifest.version, target)
    return target


def _gate_variants(
    tmp: Path,
    graphs: dict[str, str],
    runs: Runs,
    want: list[Floats],
    tolerance: float,
    variants: Sequence[str],
    quantizable: Sequence[str],
) -> tuple[dict[str, Any], dict[str, Any], Agreement]:
    """fp32 gate (raises), then int8 and fp16 (shipped only when they pass)."""
    timings: dict[str, float] = {}
    notes: dict[str, Any] = {}
    started = time.perf_counter()
    fp32_runs = runs(_paths(tmp, graphs), CPU)
    fp32 = _worst(*(Agreement.of(want, g, tolerance, PROBE_LABELS) for g in fp32_runs))
    timings["fp32_parity"] = round(time.perf_counter() - started, 2)
    if not fp32.passes_fp32(tolerance):
        raise ParityError(f"export refused: fp32 graphs disagree with torch: {fp32.as_dict()}")
    shipped: dict[str, Any] = {"fp32": {"files": dict(graphs), "parity": fp32.as_dict()}}
    for variant in variants:
        if variant not in ("int8", "fp16"):
            raise ValueError(f"unknown variant {variant!r}")
        if variant == "fp16" and not _gpu():
            notes["fp16"] = {"status": NO_GPU}
            continue
        started = time.perf_counter()
        files = {**graphs, **{g: f"{g}.{variant}.onnx" for g in quantizable}}
        try:
            for graph in quantizable:
                convert = _quantize if variant == "int8" else _to_fp16
                convert(tmp / graphs[graph], tmp / files[graph])
            provider = CPU if variant == "int8" else CUDA
            graph_runs = runs(_paths(tmp, files), provider)
        except Exception as exc:  # converters and ORT raise assorted types; fp32 still ships
            log.warning("%s variant not shipped: conversion or run failed: %s", variant, exc)
            notes[variant] = {"status": f"failed: {exc}"[:500]}
            got = None
        else:
            got = _worst(*(Agreement.of(want, g, tolerance, PROBE_LABELS) for g in graph_runs))
        timings[variant] = round(time.perf_counter() - started, 2)
        if got is not None and got.passes_ranking():
            shipped[variant] = {"files": files, "parity": got.as_dict()}
            notes[variant] = {"status": "shipped", "parity": got.as_dict()}
            continue
        if got is not None:
            log.warning("%s variant not shipped: %s", variant, got.as_dict())
            notes[variant] = {"status": "refused by its gate", "parity": got.as_dict()}
        for graph in quantizable:
            (tmp / files[graph]).unlink(missing_ok=True)
    notes["seconds"] = timings
    notes["notes"] = [f"fp16: {NO_GPU}"] if notes.get("fp16", {}).get("status") == NO_GPU else []
    return shipped, notes, fp32


def _paths(tmp: Path, files: Mapping[str, str]) -> dict[str, Path]:
    return {graph: tmp / name for graph, name in files.items()}


def _manifest(
    tmp: Path,
    *,
    kind: str,
    version_hash: str,
    dim: int,
    max_length: int,
    opset: int,
    spec_dict: Mapping[str, Any],
    shipped: Mapping[str, Any],
    metrics: Mapping[str, Any],
    parent: str,
    started: float,
    parity: Mapping[str, Any],
) -> Manifest:
    files = {
        p.relative_to(tmp).as_posix(): sha256_file(p)
        for p in sorted(tmp.rglob("*"))
        # Sub-folders' manifests are files of this version too; only our own is left out.
        if p.is_file() and not (p.name == MANIFEST_FILE and p.parent == tmp)
    }
    return Manifest(
        name=f"{kind}-minilm",
        version=f"{kind}-{version_hash[:8]}",
        files=files,
        embedding_dim=dim,
        max_length=max_length,
        kind=kind,
        opset=opset,
        parity=dict(parity),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions=_versions(),
        export_seconds=round(time.perf_counter() - started, 2),
        features=dict(spec_dict),
        variants=dict(shipped),
        metrics=dict(metrics),
        parent=parent,
    )


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
    featurizer = Featurizer.from_file(base_model_path() / TOKENIZER, spec)
    started = time.perf_counter()
    with _staging(out_dir, models_dir, "cross") as tmp:
        lst = PROBE_LISTS[0]
        pb = featurizer.pairs(lst.query, lst.history, lst.texts)
        args = {k: torch.from_numpy(v) for k, v in _pair_feed(pb).items()}
        axes = {k: {0: "batch", 1: "sequence"} for k in args}
        opset = _export_graph(module, args, axes, "logits", tmp / "cross.onnx")
        exported = time.perf_counter() - started
        torch.save(module.state_dict(), tmp / "cross.pt")
        shutil.copyfile(base_model_path() / TOKENIZER, tmp / TOKENIZER)
        want = [np.asarray(cross_scorer(module, featurizer)(x)) for x in PROBE_LISTS]
        shipped, notes, fp32 = _gate_variants(
            tmp, {"cross": "cross.onnx"}, _cross_runs(featurizer), want,
            FP32_TOLERANCE["cross"], variants, ["cross"],
        )
        notes["seconds"]["fp32_export"] = round(exported, 2)
        manifest = _manifest(
            tmp, kind="cross", version_hash=sha256_file(tmp / "cross.onnx"),
            dim=hidden_size(module.bert), max_length=spec.max_length, opset=opset,
            spec_dict=spec.to_dict(), shipped=shipped, metrics={**(metrics or {}), "export": notes},
            parent=parent, started=started, parity=fp32.as_dict(),
        )
        _install_version(tmp, manifest, out_dir, models_dir)
    return manifest


def _encoder_is_base(encoder: SentenceEmbedder) -> bool:
    base = base_encoder().state_dict()
    return all(torch.equal(v.cpu(), base[k]) for k, v in encoder.state_dict().items())


def _encoder_parity(enc: SentenceEmbedder, graph: Path, featurizer: Featurizer) -> float:
    """Max |torch - ORT| over the probe texts' embeddings; ParityError beyond tolerance."""
    texts = Layout.of(PROBE_LISTS, featurizer.spec).texts
    with torch.no_grad():
        want = encode(enc, featurizer, texts).numpy()
    diff = float(np.abs(want - _ort_encode(_session(graph), featurizer, texts)).max())
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

    encoder.pt is saved only when the encoder differs from the base MiniLM.
    """
    spec = spec or FeatureSpec()
    enc = copy.deepcopy(encoder).cpu().eval()
    hd = copy.deepcopy(head).cpu().eval()
    featurizer = Featurizer.from_file(base_model_path() / TOKENIZER, spec)
    started = time.perf_counter()
    with _staging(out_dir, models_dir, "embed") as tmp:
        ids, mask = featurizer.texts(["a short probe", "a somewhat longer probe for tracing"])
        args = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        axes = {k: {0: "batch", 1: "sequence"} for k in args}
        opset = _export_graph(enc, args, axes, "embedding", tmp / "encoder.onnx")
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
        _export_graph(hd, head_args, head_axes, "scores", tmp / "head.onnx")
        exported = time.perf_counter() - started
        torch.save(hd.state_dict(), tmp / "head.pt")
        if not _encoder_is_base(enc):
            torch.save(enc.state_dict(), tmp / "encoder.pt")
        shutil.copyfile(base_model_path() / TOKENIZER, tmp / TOKENIZER)
        encoder_diff = _encoder_parity(enc, tmp / "encoder.onnx", featurizer)
        score = embed_scorer(enc, hd, featurizer)
        want = [np.asarray(score(x)) for x in PROBE_LISTS]
        graphs = {"encoder": "encoder.onnx", "head": "head.onnx"}
        shipped, notes, _ = _gate_variants(
            tmp, graphs, _embed_runs(featurizer), want, FP32_TOLERANCE["embed"], variants,
            ["encoder"],
        )
        shipped["fp32"]["parity"]["encoder_max_abs_diff"] = encoder_diff
        notes["seconds"]["fp32_export"] = round(exported, 2)
        joined = sha256_file(tmp / "encoder.onnx") + sha256_file(tmp / "head.onnx")
        manifest = _manifest(
            tmp, kind="embed", version_hash=hashlib.sha256(joined.encode()).hexdigest(),
            dim=hd.dim, max_length=spec.text_tokens, opset=opset, spec_dict=spec.to_dict(),
            shipped=shipped, metrics={**(metrics or {}), "export": notes}, parent=parent,
            started=started, parity=shipped["fp32"]["parity"],
        )
        _install_version(tmp, manifest, out_dir, models_dir)
    return manifest


def export_cascade(
    embed_dir: Path,
    cross_dir: Path,
    out_dir: Path | None = None,
    *,
    k: int,
    models_dir: Path | None = None,
    metrics: Mapping[str, Any] | None = None,
    parent: str = "",
) -> Manifest:
    """A cascade version: verified copies of both versions in embed/ and cross/.

    Its variants are those both components ship, with paths relative to the cascade folder.
    """
    if k < 0:
        raise ValueError("cascade k must be >= 0")
    parts = {"embed": Path(embed_dir), "cross": Path(cross_dir)}
    loaded = {role: load_verified(path) for role, path in parts.items()}
    for role, manifest in loaded.items():
        if manifest.kind != role:
            raise ModelError(f"{parts[role]}: a {manifest.kind!r} model is not a {role!r} one")
    started = time.perf_counter()
    with _staging(out_dir, models_dir, "cascade") as tmp:
        for role, path in parts.items():
            shutil.copytree(path, tmp / role)
            load_verified(tmp / role)
        common = set(loaded["embed"].variants) & set(loaded["cross"].variants)
        shipped = {
            v: {
                "files": {
                    f"{role}/{g}": f"{role}/{name}"
                    for role, m in loaded.items()
                    for g, name in m.variants[v]["files"].items()
                },
                "parity": {role: m.variants[v].get("parity", {}) for role, m in loaded.items()},
            }
            for v in sorted(common)
        }
        versions = {role: m.version for role, m in loaded.items()}
        key = json.dumps({**versions, "cascade_k": k}, sort_keys=True)
        manifest = _manifest(
            tmp, kind="cascade", version_hash=hashlib.sha256(key.encode()).hexdigest(),
            dim=loaded["embed"].embedding_dim, max_length=loaded["cross"].max_length,
            opset=loaded["cross"].opset, spec_dict={"cascade_k": k}, shipped=shipped,
            metrics={**(metrics or {}), "components": versions}, parent=parent,
            started=started, parity={},
        )
        manifest = replace(manifest, components={role: role for role in parts})
        _install_version(tmp, manifest, out_dir, models_dir)
    return manifest


# --- the base (untrained) rankers -------------------------------------------------------------


def _find_base(kind: Kind, models_dir: Path, cascade_k: int) -> Path | None:
    for path in sorted(models_dir.glob(f"{kind}-*")):
        try:
            manifest = Manifest.load(path)
        except ModelError:
            continue
        if manifest.kind != kind or manifest.parent or not manifest.metrics.get("untrained"):
            continue
        if kind == "cascade" and manifest.features.get("cascade_k") != cascade_k:
            continue
        try:
            manifest.verify(path)
        except ModelError as exc:
            log.warning("ignoring %s: %s", path, exc)
            continue
        return path
    return None


def ensure_base_ranker(kind: Kind, models_dir: Path, *, cascade_k: int = 10) -> Path:
    """A verified base (untrained head, parent "") version of `kind` under `models_dir`,
    exported there first if none exists. Exports are deterministic: same bytes, same version.

    cross: base MiniLM + a linear head drawn with seed 0; embed: base encoder + an EmbedHead
    whose output layer is zero (ranks like zero-shot); cascade: those two with `cascade_k`.
    """
    models_dir = Path(models_dir)
    found = _find_base(kind, models_dir, cascade_k)
    if found is not None:
        return found
    try:
        return _export_base(kind, models_dir, cascade_k)
    except OSError:
        # Another process may have installed the same (deterministic) version meanwhile.
        found = _find_base(kind, models_dir, cascade_k)
        if found is None:
            raise
        return found


def _export_base(kind: Kind, models_dir: Path, cascade_k: int) -> Path:
    untrained = {"untrained": True}
    if kind == "cross":
        manifest = export_cross(CrossRanker(seed=0), models_dir=models_dir, metrics=untrained)
    elif kind == "embed":
        encoder = base_encoder()
        head = EmbedHead(hidden_size(encoder.bert), seed=0)
        manifest = export_embed(encoder, head, models_dir=models_dir, metrics=untrained)
    elif kind == "cascade":
        embed = ensure_base_ranker("embed", models_dir)
        cross = ensure_base_ranker("cross", models_dir)
        manifest = export_cascade(
            embed, cross, models_dir=models_dir, k=cascade_k, metrics=untrained
        )
    else:
        raise ValueError(f"unknown ranker kind {kind!r}")
    return models_dir / manifest.version


__all__ = [
    "PROBE_LISTS",
    "Agreement",
    "ensure_base_ranker",
    "export_cascade",
    "export_cross",
    "export_embed",
    "kendall_tau",
    "top_overlap",
]
