"""The exported encoder matches torch, and a tampered model folder is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scoring import Manifest, ModelError, OnnxEncoder

# Not the export's probe set: the gate must hold on texts it was not tuned on.
NEW_TEXTS = [
    "",
    "a",
    "Bosch cordless drill 18V with two batteries and carrying case",
    "organic green tea, 100 bags",
    "LEGO Technic race car 1:8 scale model kit for adults",
    "tente de camping 4 places imperméable",
    "men's wool winter coat navy blue size L slim fit " * 20,
    "4K HDR smart TV 55 inch",
    "protein powder vanilla 2kg",
    "baby stroller lightweight foldable",
]


@pytest.fixture
def model_copy(encoder_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "zeroshot-minilm"
    shutil.copytree(encoder_dir, target)
    return target


def test_manifest_records_export(encoder_dir: Path) -> None:
    manifest = Manifest.load(encoder_dir)
    assert manifest.name == "zeroshot-minilm"
    assert manifest.version == "zeroshot-minilm-" + manifest.files["model.onnx"][:8]
    assert set(manifest.files) == {"model.onnx", "tokenizer.json"}
    assert manifest.embedding_dim == 384 and manifest.max_length == 128
    assert manifest.parity["max_abs_diff"] <= 1e-4 and manifest.parity["ranking_identical"]
    assert {"torch", "onnx", "onnxruntime"} <= set(manifest.versions)
    # Nothing of the export's temporary folders is left beside the model.
    assert not [p for p in encoder_dir.parent.iterdir() if p.name.startswith(".zeroshot-minilm")]


def test_torch_and_ort_agree_on_new_texts(encoder_dir: Path) -> None:
    from scoring.training import measure_parity

    report = measure_parity(encoder_dir, NEW_TEXTS, "power tools for home improvement")
    assert report.max_abs_diff <= 1e-4
    assert report.graph_max_abs_diff <= 1e-4
    assert report.ranking_identical
    assert report.passed


def test_encode_is_normalized_and_order_independent_of_batching(encoder_dir: Path) -> None:
    small = OnnxEncoder(encoder_dir, device="cpu", batch_size=3)
    large = OnnxEncoder(encoder_dir, device="cpu", batch_size=64)
    assert small.provider == "CPUExecutionProvider"
    a, b = small.encode(NEW_TEXTS), large.encode(NEW_TEXTS)
    assert a.shape == (len(NEW_TEXTS), 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # Each row belongs to its own text: encoding one text alone gives the same row.
    np.testing.assert_allclose(large.encode([NEW_TEXTS[2]])[0], a[2], atol=1e-5)
    assert large.encode([]).shape == (0, 384)


def test_corrupted_model_is_refused(model_copy: Path) -> None:
    path = model_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        OnnxEncoder(model_copy, device="cpu")


def test_missing_file_or_manifest_is_refused(model_copy: Path, tmp_path: Path) -> None:
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="missing"):
        OnnxEncoder(model_copy, device="cpu")
    with pytest.raises(ModelError, match="manifest"):
        OnnxEncoder(tmp_path / "nowhere", device="cpu")


def test_manifest_pointing_outside_is_refused(model_copy: Path) -> None:
    raw = json.loads((model_copy / "manifest.json").read_text())
    raw["files"]["../evil"] = "0" * 64
    (model_copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="outside"):
        OnnxEncoder(model_copy, device="cpu")


def test_ensure_encoder_repairs_a_corrupted_copy(model_copy: Path) -> None:
    from scoring.training import ensure_encoder

    (model_copy / "model.onnx").write_bytes(b"not a model")
    assert ensure_encoder(model_copy.parent) == model_copy
    OnnxEncoder(model_copy, device="cpu")  # verifies again
    assert [p.name for p in model_copy.parent.iterdir()] == ["zeroshot-minilm"]


def test_max_length_beyond_the_checked_one_is_refused(encoder_dir: Path) -> None:
    with pytest.raises(ModelError, match="max_length"):
        OnnxEncoder(encoder_dir, device="cpu", max_length=256)


def test_failed_parity_gate_leaves_the_old_model(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scoring.training import ParityError, ParityReport, export, export_encoder

    before = Manifest.load(model_copy)
    failing = ParityReport(
        max_abs_diff=0.5, graph_max_abs_diff=0.5, probes=17, ranking_identical=False
    )
    monkeypatch.setattr(export, "measure_parity", lambda *a, **k: failing)
    with pytest.raises(ParityError, match="export refused"):
        export_encoder(model_copy)
    assert Manifest.load(model_copy) == before
    OnnxEncoder(model_copy, device="cpu")  # still intact
    assert [p.name for p in model_copy.parent.iterdir()] == ["zeroshot-minilm"]
