"""The common backend of the ONNX scorers: opening a model's graphs and running them.

The encoder, cross and embed scorers open their graphs through this module, so device handling
is decided once: TensorRT (opt-in) or CUDA when a GPU is really usable, else CPU, and the
provider ONNX Runtime actually chose is what gets reported. It also finds the file of each
graph in a variant (which variant serves: scoring/variants.py), checks graph IO names, loads
the model's Featurizer, and turns raw graph outputs into the finite, unknown-items-last scores
every scorer returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from scoring.base import TOKENIZER_FILE, Manifest, ModelError
from scoring.features import FeatureSpec, Featurizer
from scoring.zeroshot import UNKNOWN_STEP

log = logging.getLogger(__name__)

ORT_VERSION: str = ort.__version__
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = frozenset({CUDA, TENSORRT})
Device = Literal["auto", "cpu", "cuda"]
VARIANTS = ("fp32", "int8", "fp16")
Array = npt.NDArray[Any]

# ORT type strings of graph inputs -> the numpy dtype to feed (fp16 graphs may keep fp16 IO).
_NUMPY_TYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def providers_for(device: Device, *, tensorrt: bool = False) -> list[str]:
    """The providers to ask for, best first; CPU always last as the fallback."""
    if device == "cpu":
        return [CPU]
    available = ort.get_available_providers()
    if CUDA not in available:
        if device == "cuda":
            raise ModelError(f"device 'cuda' requested but this onnxruntime has only {available}")
        return [CPU]
    if device == "auto" and cuda_device_count() == 0:
        # onnxruntime-gpu lists CUDA even with no GPU; asking for it then only logs a load error.
        log.info("no CUDA device found; using %s", CPU)
        return [CPU]
    _preload_cuda_libraries()
    # TensorRT builds an engine per input-shape profile (minutes at start, again for new
    # shapes), so it is only tried when asked for and its library is present.
    if tensorrt and TENSORRT in available and _has_tensorrt():
        return [TENSORRT, CUDA, CPU]
    return [CUDA, CPU]


def wants_gpu(device: Device) -> bool:
    """Whether `device` resolves to a GPU provider here (fp16 vs int8: scoring/variants.py)."""
    return providers_for(device)[0] != CPU


def create_session(
    path: Path, *, device: Device = "auto", threads: int | None = None, tensorrt: bool = False
) -> ort.InferenceSession:
    """An optimized session for the graph at `path` on the best usable provider."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # A scorer runs several sessions one after another (encoder then head; embed then cross)
    # and each has its own thread pool. Pool threads that spin-wait after a run hold the cores
    # the next session needs: on 2 cores an encoder + head call took 2.3x longer spinning
    # (108 vs 47 ms, 32 searches, int8) — see docs/bench/scorer.md.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = providers_for(device, tensorrt=tensorrt)
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc
    chosen = chosen_provider(session)
    if device == "cuda" and chosen not in GPU_PROVIDERS:
        raise ModelError(f"device 'cuda' requested but ONNX Runtime chose {chosen}")
    if device == "auto" and providers[0] != CPU and chosen == CPU:
        log.warning("CUDA available to ONNX Runtime but it fell back to %s", chosen)
    return session


def chosen_provider(session: ort.InferenceSession) -> str:
    """The provider ONNX Runtime actually runs the session on, e.g. CPUExecutionProvider."""
    return str(session.get_providers()[0])


def check_io(
    session: ort.InferenceSession,
    inputs: Sequence[str],
    outputs: Sequence[str],
    *,
    what: str = "graph",
) -> None:
    """Raise ModelError unless the graph takes exactly `inputs` and produces `outputs`."""
    got_in = [i.name for i in session.get_inputs()]
    got_out = [o.name for o in session.get_outputs()]
    # Every input must be fed, so the set must match; extra outputs are harmless.
    if sorted(got_in) != sorted(inputs) or not set(outputs) <= set(got_out):
        raise ModelError(
            f"{what}: graph has inputs {got_in} and outputs {got_out}; "
            f"expected inputs {list(inputs)} and outputs {list(outputs)}"
        )


def graph_path(manifest: Manifest, model_dir: Path, variant: str, graph: str) -> Path:
    """The file of `graph` ("cross", "encoder", "head") in `variant`; it must be in the manifest.

    A variant that does not convert a graph (int8/fp16 leave the small embed head alone)
    serves fp32's file for it; a manifest without variants has `<graph>.onnx`.
    """
    name = _variant_files(manifest, variant).get(graph) or _variant_files(manifest, "fp32").get(
        graph, f"{graph}.onnx"
    )
    if not isinstance(name, str) or name not in manifest.files:
        raise ModelError(f"{model_dir}: manifest does not list {name!r} ({graph}, {variant})")
    return model_dir / name


def _variant_files(manifest: Manifest, variant: str) -> Mapping[str, Any]:
    entry = manifest.variants.get(variant)
    files = entry.get("files") if isinstance(entry, Mapping) else None
    return files if isinstance(files, Mapping) else {}


def load_featurizer(manifest: Manifest, model_dir: Path) -> Featurizer:
    """The Featurizer of the model: its tokenizer.json and the FeatureSpec it was trained with."""
    if TOKENIZER_FILE not in manifest.files:
        raise ModelError(f"{model_dir}: manifest does not list {TOKENIZER_FILE}")
    try:
        spec = FeatureSpec.from_dict(manifest.features)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{model_dir}: invalid feature spec in the manifest ({exc})") from exc
    try:
        return Featurizer.from_file(model_dir / TOKENIZER_FILE, spec)
    except Exception as exc:  # tokenizers raises plain Exception on bad files
        raise ModelError(f"{model_dir / TOKENIZER_FILE}: cannot load tokenizer ({exc})") from exc


class Runner:
    """Runs one session; on CUDA through IOBinding so outputs stay on device until copied."""

    def __init__(self, session: ort.InferenceSession, outputs: Sequence[str]) -> None:
        self.session = session
        self.outputs = list(outputs)
        self.provider = chosen_provider(session)
        self._bind = self.provider in GPU_PROVIDERS
        self._types = {i.name: _NUMPY_TYPES.get(i.type, np.float32) for i in session.get_inputs()}

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        """The requested outputs as numpy arrays, in the order of `outputs`."""
        cast = {k: np.ascontiguousarray(v, dtype=self._types.get(k)) for k, v in feeds.items()}
        if not self._bind:
            return [np.asarray(x) for x in self.session.run(self.outputs, cast)]
        binding = self.session.io_binding()
        for name, value in cast.items():
            binding.bind_cpu_input(name, value)
        for name in self.outputs:
            # ORT allocates the output on the GPU at its real shape; one copy back per run.
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        return [np.asarray(x) for x in binding.copy_outputs_to_cpu()]


def unknown_last(known_scores: Sequence[float] | Array, texts: Sequence[str]) -> list[float]:
    """Finite scores for all candidates: `known_scores` for those with text (in order), and
    below them the unknown ones (text ""), spaced to keep their original order."""
    scores = np.zeros(len(texts), dtype=np.float64)
    known = [j for j, text in enumerate(texts) if text]
    raw = np.asarray(known_scores, dtype=np.float64)
    if len(raw) != len(known):
        raise ValueError(f"{len(raw)} scores for {len(known)} known candidates")
    # A broken graph must not poison the ranking with NaN or infinity.
    scores[known] = np.nan_to_num(raw, nan=-1e6, posinf=1e6, neginf=-1e6)
    floor = float(scores[known].min()) if known else 0.0
    step = UNKNOWN_STEP * max(1.0, abs(floor))  # stays distinguishable at any magnitude
    for rank, j in enumerate((j for j, text in enumerate(texts) if not text), start=1):
        scores[j] = floor - step * rank
    result: list[float] = scores.tolist()
    return result


@functools.cache
def cuda_device_count() -> int:
    """GPUs the NVIDIA driver reports; 0 when there is no driver."""
    name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        lib = ctypes.CDLL(name)
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    except (OSError, AttributeError):
        return 0


@functools.cache
def _has_tensorrt() -> bool:
    for name in ("libnvinfer.so.10", "libnvinfer.so.8", "nvinfer_10.dll"):
        with contextlib.suppress(OSError):
            ctypes.CDLL(name)
            return True
    return False


@functools.cache
def _preload_cuda_libraries() -> None:
    # Serving never imports torch, which is what otherwise loads the pip-installed CUDA libs.
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            preload()
    except Exception as exc:  # best effort: the provider check after session creation decides
        log.warning("preloading CUDA libraries failed: %s", exc)
    message = " ".join(printed.getvalue().split())
    if message:
        # e.g. a CUDA library missing from the environment: the reason CUDA will not load.
        log.log(logging.WARNING if "Failed" in message else logging.INFO, "preload: %s", message)
