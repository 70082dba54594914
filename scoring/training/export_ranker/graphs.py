"""ONNX graphs of the rankers: export from torch, int8 and fp16 conversion, export-time runs.

onnxruntime is used here only for export-time work (quantization, fp16 conversion and the
parity runs of scoring/training/export_ranker/gates.py); serving opens graphs in scoring/.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from scoring.base import ModelError
from scoring.training.export import MAX_POSITIONS, quiet_exporter_logs

Floats = npt.NDArray[np.float32]
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


def export_graph(
    module: torch.nn.Module,
    args: Mapping[str, torch.Tensor],
    axes: Mapping[str, Mapping[int, str]],
    output: str | Sequence[str],
    path: Path,
) -> int:
    """Export with dynamic axes (named per input), name the output(s); returns the opset."""
    names = [output] if isinstance(output, str) else list(output)
    dims: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    for name in args:
        spec = {}
        for axis, dim in axes.get(name, {}).items():
            top = MAX_POSITIONS if dim == "sequence" else 65536
            shared.setdefault(dim, torch.export.Dim(dim, min=1, max=top))
            spec[axis] = shared[dim]
        dims[name] = spec
    quiet_exporter_logs()
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
    outs = list(graph.outputs)[: len(names)]
    for node in graph:
        node.metadata_props.clear()  # stack traces differ per run: drop them for stable bytes
        for value in node.outputs:
            value.metadata_props.clear()
            if value.name in names and all(value is not o for o in outs):
                value.name = f"{value.name}_inner"  # a duplicate name makes the model invalid
    for out, name in zip(outs, names, strict=True):
        out.name = name
    program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def quantize(src: Path, dst: Path) -> None:
    """Dynamic int8, per channel (docs/models.md)."""
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


def to_fp16(src: Path, dst: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def gpu() -> bool:
    # onnxruntime-gpu lists CUDA even without a GPU; torch asks the driver.
    return CUDA in ort.get_available_providers() and torch.cuda.is_available()


def session(path: Path, provider: str = CPU) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    created = ort.InferenceSession(str(path), options, providers=[provider])
    if created.get_providers()[0] != provider:
        raise ModelError(f"{path}: ONNX Runtime did not take {provider}")
    return created


def run(created: ort.InferenceSession, feed: Mapping[str, Any]) -> Floats:
    return np.asarray(created.run(None, dict(feed))[0], dtype=np.float32)


__all__ = ["CPU", "CUDA", "export_graph", "gpu", "quantize", "run", "session", "to_fp16"]
