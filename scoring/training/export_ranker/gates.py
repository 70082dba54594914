"""Export-time gates: each graph variant against torch eager on the probe lists.

fp32 must match torch (max |delta| within FP32_TOLERANCE, same ranking) or the export is
refused; int8 and fp16 ship only when they pass the ranking gate (scoring/agreement.py) on
this, the exporting, machine. Serving checks a shipped variant again on its own machine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from scoring.agreement import RANKING_GATE, Agreement, RankingGate
from scoring.features import Featurizer
from scoring.training.export_ranker.graphs import (
    CPU,
    CUDA,
    Floats,
    gpu,
    quantize,
    run,
    session,
    to_fp16,
)
from scoring.training.export_ranker.probes import PROBE_LABELS, PROBE_LISTS
from scoring.training.layout import Layout
from scoring.training.parity import ParityError

log = logging.getLogger(__name__)

FP32_TOLERANCE = {"cross": 1e-3, "embed": 1e-4}
NO_GPU = "not checked (no GPU)"
# Each run maps probe-list index -> scores; one run per list, one batched as served.
Runs = Callable[[Mapping[str, Path], str], list[dict[int, Floats]]]
# Batched together as serving would (the two 128-token edge lists only alone: padding all to
# 128 tokens would cost more than it checks).
BATCHED = (0, 1, 2, 3, 4, 7)


def pair_feed(pb: Any) -> dict[str, Any]:
    return {
        "input_ids": pb.input_ids,
        "attention_mask": pb.attention_mask,
        "token_type_ids": pb.token_type_ids,
    }


def cross_runs(featurizer: Featurizer) -> Runs:
    def runs(graphs: Mapping[str, Path], provider: str) -> list[dict[int, Floats]]:
        created = session(graphs["cross"], provider)
        per_list = {}
        for i, lst in enumerate(PROBE_LISTS):
            pb = featurizer.pairs(lst.query, lst.history, lst.texts)
            per_list[i] = run(created, pair_feed(pb))
        lists = [PROBE_LISTS[i] for i in BATCHED]
        triples = [(x.query, x.history, t) for x in lists for t in x.texts]
        flat = run(created, pair_feed(featurizer.pair_batch(triples)))
        parts = np.split(flat, np.cumsum([len(x.items) for x in lists])[:-1])
        return [per_list, dict(zip(BATCHED, parts, strict=True))]

    return runs


def ort_encode(created: ort.InferenceSession, featurizer: Featurizer, texts: list[str]) -> Floats:
    out = np.zeros((len(texts), 0), dtype=np.float32)
    for start in range(0, len(texts), 16):
        ids, mask = featurizer.texts(texts[start : start + 16])
        part = run(created, {"input_ids": ids, "attention_mask": mask})
        out = part if start == 0 else np.concatenate([out, part])
    return out


def embed_runs(featurizer: Featurizer) -> Runs:
    def runs(graphs: Mapping[str, Path], provider: str) -> list[dict[int, Floats]]:
        encoder, head = session(graphs["encoder"], provider), session(graphs["head"], provider)
        lay = Layout.of(PROBE_LISTS, featurizer.spec)  # the head is cheap: batch all lists
        table = torch.from_numpy(ort_encode(encoder, featurizer, lay.texts))
        batched = run(head, {k: v.numpy() for k, v in lay.gather(table).items()})
        per_list = {}
        for i, lst in enumerate(PROBE_LISTS):
            one = Layout.of([lst], featurizer.spec)
            rows = torch.from_numpy(ort_encode(encoder, featurizer, one.texts))
            per_list[i] = run(head, {k: v.numpy() for k, v in one.gather(rows).items()})[0]
        together = {i: batched[i, : len(x.items)] for i, x in enumerate(PROBE_LISTS)}
        return [per_list, together]

    return runs


def _paths(tmp: Path, files: Mapping[str, str]) -> dict[str, Path]:
    return {graph: tmp / name for graph, name in files.items()}


def gate_variants(
    tmp: Path,
    graphs: dict[str, str],
    runs: Runs,
    want: list[Floats],
    tolerance: float,
    variants: Sequence[str],
    quantizable: Sequence[str],
    gate: RankingGate = RANKING_GATE,
) -> tuple[dict[str, Any], dict[str, Any], Agreement]:
    """fp32 gate (raises), then int8 and fp16 (shipped only when they pass `gate`).

    Returns (the manifest's variants, notes for its metrics, the fp32 agreement)."""
    timings: dict[str, float] = {}
    notes: dict[str, Any] = {}
    started = time.perf_counter()
    fp32_runs = runs(_paths(tmp, graphs), CPU)
    fp32 = Agreement.worst(*(Agreement.of(want, g, tolerance, PROBE_LABELS) for g in fp32_runs))
    timings["fp32_parity"] = round(time.perf_counter() - started, 2)
    if not fp32.passes_fp32(tolerance):
        raise ParityError(f"export refused: fp32 graphs disagree with torch: {fp32.as_dict()}")
    shipped: dict[str, Any] = {"fp32": {"files": dict(graphs), "parity": fp32.as_dict()}}
    for variant in variants:
        if variant not in ("int8", "fp16"):
            raise ValueError(f"unknown variant {variant!r}")
        if variant == "fp16" and not gpu():
            notes["fp16"] = {"status": NO_GPU}
            continue
        started = time.perf_counter()
        files = {**graphs, **{g: f"{g}.{variant}.onnx" for g in quantizable}}
        try:
            for graph in quantizable:
                convert = quantize if variant == "int8" else to_fp16
                convert(tmp / graphs[graph], tmp / files[graph])
            provider = CPU if variant == "int8" else CUDA
            graph_runs = runs(_paths(tmp, files), provider)
        except Exception as exc:  # converters and ORT raise assorted types; fp32 still ships
            log.warning("%s variant not shipped: conversion or run failed: %s", variant, exc)
            notes[variant] = {"status": f"failed: {exc}"[:500]}
            got = None
        else:
            got = Agreement.worst(
                *(Agreement.of(want, g, tolerance, PROBE_LABELS) for g in graph_runs)
            )
        timings[variant] = round(time.perf_counter() - started, 2)
        if got is not None and gate.passes(got):
            shipped[variant] = {"files": files, "parity": got.as_dict()}
            notes[variant] = {"status": "shipped", "parity": got.as_dict()}
            continue
        if got is not None:
            log.warning("%s variant not shipped: %s", variant, "; ".join(gate.failures(got)))
            notes[variant] = {"status": "refused by its gate", "parity": got.as_dict()}
        for graph in quantizable:
            (tmp / files[graph]).unlink(missing_ok=True)
    notes["seconds"] = timings
    notes["notes"] = [f"fp16: {NO_GPU}"] if notes.get("fp16", {}).get("status") == NO_GPU else []
    return shipped, notes, fp32


__all__ = [
    "FP32_TOLERANCE",
    "NO_GPU",
    "Runs",
    "cross_runs",
    "embed_runs",
    "gate_variants",
    "ort_encode",
    "pair_feed",
]
