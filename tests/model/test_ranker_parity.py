"""Exported learned rankers: fp32 ONNX Runtime agrees with torch on lists the gates never saw,
the int8 variant is gated, manifests cover every file and store the probe reference serving
checks variants against, and a flipped byte is refused.

fp32 is portable, so its parity is a real numeric test. int8 numerics depend on the CPU's
integer kernels (AVX2, VNNI, AMX): its quality is never asserted as a number here; what is
tested is that the gate decides, at export and again at load time on this machine.

Each kind is exported once per module (fixtures below) into the session's temp folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
import torch

from scoring import CrossScorer, EmbedScorer
from scoring.agreement import RANKING_GATE, Agreement, RankingGate
from scoring.base import MANIFEST_FILE, Manifest, ModelError, load_verified, sha256_file
from scoring.features import FeatureSpec, Featurizer
from scoring.kinds import ModelKind, kind_names
from scoring.training.data import TrainingList, synthetic_lists
from scoring.training.eager import cross_scorer, embed_scorer
from scoring.training.export_ranker import (
    PROBE_LISTS,
    ensure_base_ranker,
    export_cascade,
    export_cross,
    export_embed,
)
from scoring.training.export_ranker import embed as embed_export
from scoring.training.export_ranker.gates import cross_runs, gate_variants
from scoring.training.fit import load_cross, load_embed, train_cross, train_embed
from scoring.training.layout import Layout, encode
from scoring.training.parity import ParityError
from scoring.variants import ProbeSet

Floats = npt.NDArray[np.float32]
TRAIN = synthetic_lists(300, seed=101)
# Not the export's probe lists: the gates must hold on lists they were not tuned on.
NEW_LISTS = [
    *synthetic_lists(4, seed=4242, candidates=15, history=6),
    TrainingList(
        "power tools for home improvement",
        (),
        (
            ("u1", ""),
            ("u2", "Bosch cordless drill 18V with two batteries and carrying case"),
            ("u3", "tente de camping 4 places imperméable"),
            ("u4", "men's wool winter coat navy blue size L slim fit " * 20),
            ("u5", "organic green tea, 100 bags"),
        ),
        (0.0, 3.0, 0.0, 0.0, 1.0),
    ),
    TrainingList(
        "4K HDR smart TV 55 inch",
        tuple(f"history entry number {i} " * (i + 1) for i in range(14)),
        (("v1", "protein powder vanilla 2kg"), ("v2", "LEGO Technic race car 1:8")),
        (0.0, 1.0),
    ),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rankers")


@pytest.fixture(scope="module")
def base_embed(root: Path) -> Path:
    return ensure_base_ranker("embed", root)


@pytest.fixture(scope="module")
def embed_dir(root: Path, base_embed: Path) -> Path:
    # Fine-tuned from the served base version: exercises init= and the saved head weights.
    encoder, head, report = train_embed(TRAIN, init=base_embed, steps=80, seed=1)
    parent = Manifest.load(base_embed).version
    manifest = export_embed(
        encoder, head, models_dir=root, parent=parent, metrics={"train": report.as_dict()}
    )
    return root / manifest.version


@pytest.fixture(scope="module")
def cross_dir(root: Path) -> Path:
    model, report = train_cross(TRAIN, steps=4, lists_per_step=2, seed=1)
    export_cross(model, root / "my-cross", metrics={"train": report.as_dict()})
    return root / "my-cross"


@pytest.fixture(scope="module")
def cascade_dir(root: Path, embed_dir: Path, cross_dir: Path) -> Path:
    manifest = export_cascade(embed_dir, cross_dir, models_dir=root, k=5)
    return root / manifest.version


@pytest.fixture(scope="module")
def featurizer() -> Featurizer:
    from scoring.training.models import base_model_path

    return Featurizer.from_file(base_model_path() / "tokenizer.json", FeatureSpec())


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def ort_cross(model_dir: Path, graph: str, featurizer: Featurizer) -> list[Floats]:
    sess = session(model_dir / graph)
    out = []
    for lst in NEW_LISTS:
        pb = featurizer.pairs(lst.query, lst.history, lst.texts)
        feed = {
            "input_ids": pb.input_ids,
            "attention_mask": pb.attention_mask,
            "token_type_ids": pb.token_type_ids,
        }
        out.append(np.asarray(sess.run(["logits"], feed)[0]))
    return out


def ort_embed(model_dir: Path, encoder: str, featurizer: Featurizer) -> list[Floats]:
    enc, head = session(model_dir / encoder), session(model_dir / "head.onnx")
    lay = Layout.of(NEW_LISTS, featurizer.spec)  # all lists in one padded head batch
    ids, mask = featurizer.texts(lay.texts)
    table = enc.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    feed = {k: v.numpy() for k, v in lay.gather(torch.from_numpy(table)).items()}
    scores = head.run(["scores"], feed)[0]
    assert scores.shape == (len(NEW_LISTS), max(len(x.items) for x in NEW_LISTS))
    return [scores[i, : len(x.items)] for i, x in enumerate(NEW_LISTS)]


def agreement(want: Sequence[Floats], got: Sequence[Floats], tie: float) -> Agreement:
    return Agreement.of(want, dict(enumerate(got)), tie, [x.labels for x in NEW_LISTS])


def test_cross_fp32_agrees_with_torch_on_new_lists(
    cross_dir: Path, featurizer: Featurizer
) -> None:
    manifest = load_verified(cross_dir)
    model = load_cross(cross_dir).eval()  # the saved torch weights are the exported ones
    want = [np.asarray(cross_scorer(model, featurizer)(x)) for x in NEW_LISTS]
    fp32 = agreement(want, ort_cross(cross_dir, "cross.onnx", featurizer), 1e-3)
    assert fp32.passes_fp32(1e-3), fp32
    assert manifest.variants["fp32"]["parity"]["max_abs_diff"] <= 1e-3
    assert_int8_gated_at_export(manifest, cross_dir / "cross.int8.onnx")


def assert_int8_gated_at_export(manifest: Manifest, int8_file: Path) -> None:
    """int8 ships exactly when its recorded figures passed the gate; either way they are
    kept. (Whether they pass depends on the exporting CPU: both outcomes are legitimate.)"""
    note = manifest.metrics["export"]["int8"]
    recorded = Agreement(**note["parity"])
    assert recorded.mean_abs_diff > 0  # it was quantized and measured
    if "int8" in manifest.variants:
        assert note["status"] == "shipped" and manifest.variants["int8"]["parity"] == note["parity"]
        assert RANKING_GATE.passes(recorded) and int8_file.is_file()
    else:
        assert note["status"] == "refused by its gate"
        assert not RANKING_GATE.passes(recorded) and not int8_file.exists()


def test_int8_variant_is_shipped_when_its_gate_passes(
    cross_dir: Path, featurizer: Featurizer, tmp_path: Path
) -> None:
    # Whether real int8 passes depends on the model and CPU; here the gate lets anything
    # through, so the shipping path itself is checked on the exported graph (no re-export).
    shutil.copyfile(cross_dir / "cross.onnx", tmp_path / "cross.onnx")
    model = load_cross(cross_dir).eval()
    want = [np.asarray(cross_scorer(model, featurizer)(x)) for x in PROBE_LISTS]
    anything = RankingGate(min_mean_clear_tau=-1.0, min_top10=0.0, max_ndcg_drop=1.0,
                           max_mean_ndcg_drop=1.0)
    shipped, notes, fp32 = gate_variants(
        tmp_path, {"cross": "cross.onnx"}, cross_runs(featurizer), want, 1e-3,
        ["int8"], ["cross"], gate=anything,
    )
    assert shipped["int8"]["files"] == {"cross": "cross.int8.onnx"}
    size = {name: (tmp_path / name).stat().st_size for name in ("cross.onnx", "cross.int8.onnx")}
    assert size["cross.int8.onnx"] < size["cross.onnx"] / 3
    assert notes["int8"]["status"] == "shipped" and notes["seconds"]["int8"] > 0
    assert shipped["fp32"]["parity"] == fp32.as_dict() and fp32.max_abs_diff <= 1e-3
    # The strictest gate refuses it and deletes its file: fp32 alone ships.
    nothing = RankingGate(min_mean_clear_tau=2.0)
    shipped, notes, _ = gate_variants(
        tmp_path, {"cross": "cross.onnx"}, cross_runs(featurizer), want, 1e-3,
        ["int8"], ["cross"], gate=nothing,
    )
    assert set(shipped) == {"fp32"} and notes["int8"]["status"] == "refused by its gate"
    assert not (tmp_path / "cross.int8.onnx").exists()


def test_embed_fp32_agrees_with_torch_on_new_lists(embed_dir: Path, featurizer: Featurizer) -> None:
    encoder, head = load_embed(embed_dir)
    score = embed_scorer(encoder.eval(), head.eval(), featurizer)
    want = [np.asarray(score(x)) for x in NEW_LISTS]
    fp32 = agreement(want, ort_embed(embed_dir, "encoder.onnx", featurizer), 1e-4)
    assert fp32.passes_fp32(1e-4), fp32
    manifest = load_verified(embed_dir)
    assert_int8_gated_at_export(manifest, embed_dir / "encoder.int8.onnx")
    if "int8" in manifest.variants:
        assert manifest.variants["int8"]["files"] == {
            "encoder": "encoder.int8.onnx",
            "head": "head.onnx",
        }
        # It runs on the new lists; how well it ranks them is this CPU's business (the
        # load-time gate below decides whether it serves here).
        int8 = ort_embed(embed_dir, "encoder.int8.onnx", featurizer)
        for got, ref in zip(int8, want, strict=True):
            assert np.isfinite(got).all() and got.shape == ref.shape


# The text rankers trained in this module; the hybrid's export, parity, explanations and
# manifest are tested in test_hybrid.py (its features change what a probe request is).
TEXT_RANKERS = kind_names((ModelKind.EMBED, ModelKind.CROSS))


@pytest.mark.parametrize("kind", TEXT_RANKERS)
def test_the_manifest_stores_the_fp32_probe_reference_serving_checks_against(
    kind: str, request: pytest.FixtureRequest
) -> None:
    model_dir: Path = request.getfixturevalue(f"{kind}_dir")
    manifest = load_verified(model_dir)
    probe = ProbeSet.from_manifest(manifest)
    assert probe is not None and len(probe.lists) == len(PROBE_LISTS)
    for stored, lst in zip(probe.lists, PROBE_LISTS, strict=True):
        assert stored.request.query == lst.query and stored.labels == lst.labels
        assert tuple(stored.request.candidates) == lst.items
    # The reference is what serving's fp32 graphs give: portable, so equal here within 1e-4.
    cls = CrossScorer if kind == "cross" else EmbedScorer
    fp32 = cls(model_dir, device="cpu", variant="fp32")
    for stored in probe.lists:
        got = fp32.score([stored.request]).scores[0]
        np.testing.assert_allclose(got, stored.reference, atol=1e-4)
    # And the load-time decision on this CPU is the gate's verdict on the figures it measured.
    decision = cls(model_dir, device="cpu").variant_decision
    if "int8" in manifest.variants:
        assert decision.agreement is not None and decision.checked == "int8"
        passed = RANKING_GATE.passes(decision.agreement)
        assert decision.variant == ("int8" if passed else "fp32")
    else:
        assert (decision.variant, decision.basis) == ("fp32", "not_shipped")


@pytest.mark.parametrize("kind", TEXT_RANKERS)
def test_manifest_covers_every_file(
    kind: str, request: pytest.FixtureRequest, base_embed: Path
) -> None:
    model_dir: Path = request.getfixturevalue(f"{kind}_dir")
    manifest = load_verified(model_dir)
    on_disk = {p.name for p in model_dir.iterdir()} - {MANIFEST_FILE}
    assert set(manifest.files) == on_disk
    assert all(sha256_file(model_dir / f) == h for f, h in manifest.files.items())
    assert manifest.kind == kind and manifest.features == FeatureSpec().to_dict()
    assert "tokenizer.json" in on_disk
    if kind == "cross":
        assert manifest.version == "cross-" + manifest.files["cross.onnx"][:8]
        assert {"cross.onnx", "cross.pt"} <= on_disk and manifest.parent == ""
    else:
        joined = manifest.files["encoder.onnx"] + manifest.files["head.onnx"]
        assert manifest.version == "embed-" + hashlib.sha256(joined.encode()).hexdigest()[:8]
        assert {"encoder.onnx", "head.onnx", "head.pt"} <= on_disk
        assert "encoder.pt" not in on_disk  # the encoder was frozen: base weights
        assert manifest.parent == Manifest.load(base_embed).version
    for variant in manifest.variants.values():
        assert set(variant["files"].values()) <= set(manifest.files)
    assert manifest.probe["reference"] == "fp32" and manifest.probe["lists"]
    if not torch.cuda.is_available():
        assert "fp16" not in manifest.variants
        assert "fp16: not checked (no GPU)" in manifest.metrics["export"]["notes"]
    assert manifest.metrics["train"]["steps"] > 0
    # No temporary export folder is left beside the versions.
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")]


def test_cascade_bundles_both_versions(
    cascade_dir: Path, embed_dir: Path, cross_dir: Path
) -> None:
    manifest = load_verified(cascade_dir)
    assert manifest.kind == "cascade" and manifest.features == {"cascade_k": 5}
    assert manifest.components == {"embed": "embed", "cross": "cross"}
    for role, src in (("embed", embed_dir), ("cross", cross_dir)):
        sub = load_verified(cascade_dir / role)
        assert sub == Manifest.load(src)
        assert {f"{role}/{f}" for f in sub.files} | {f"{role}/{MANIFEST_FILE}"} <= set(
            manifest.files
        )
    assert set(manifest.files) == {
        p.relative_to(cascade_dir).as_posix()
        for p in cascade_dir.rglob("*")
        if p.is_file() and p.relative_to(cascade_dir).as_posix() != MANIFEST_FILE
    }
    key = json.dumps(
        {
            "cascade_k": 5,
            "cross": Manifest.load(cross_dir).version,
            "embed": Manifest.load(embed_dir).version,
        },
        sort_keys=True,
    )
    assert manifest.version == "cascade-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    assert manifest.variants["fp32"]["files"]["cross/cross"] == "cross/cross.onnx"


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("kind", "rel"),
    [
        ("cross", "cross.onnx"),
        ("cross", "cross.pt"),
        ("embed", "head.onnx"),
        ("embed", "tokenizer.json"),
        ("cascade", "embed/head.pt"),
        ("cascade", "cross/manifest.json"),
    ],
)
def test_a_flipped_byte_is_refused(
    kind: str, rel: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    copy = tmp_path / kind
    shutil.copytree(request.getfixturevalue(f"{kind}_dir"), copy)
    Manifest.load(copy).verify(copy)
    flip_byte(copy / rel)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        Manifest.load(copy).verify(copy)


def test_base_embed_is_reused_and_ranks_like_zero_shot(
    base_embed: Path, root: Path, monkeypatch: pytest.MonkeyPatch, featurizer: Featurizer
) -> None:
    manifest = load_verified(base_embed)
    assert manifest.parent == "" and manifest.metrics["untrained"] is True
    assert "encoder.pt" not in manifest.files

    def no_export(*args: Any, **kwargs: Any) -> Manifest:
        raise AssertionError("a verified base version exists: nothing to export")

    monkeypatch.setattr(embed_export, "export_embed", no_export)
    assert ensure_base_ranker("embed", root) == base_embed
    # A corrupted copy is not taken as the base: ensure_base_ranker exports a fresh one.
    other = root.parent / "corrupted-registry"
    shutil.copytree(base_embed, other / base_embed.name)
    flip_byte(other / base_embed.name / "head.pt")
    with pytest.raises(AssertionError, match="nothing to export"):
        ensure_base_ranker("embed", other)
    # Untrained head = zero-shot: the score is the query-item cosine.
    encoder, head = load_embed(base_embed)
    lst = NEW_LISTS[0]
    scores = embed_scorer(encoder.eval(), head.eval(), featurizer)(lst)
    with torch.no_grad():
        vectors = encode(encoder, featurizer, [lst.query, *lst.texts]).numpy()
    np.testing.assert_allclose(scores, vectors[1:] @ vectors[0], atol=1e-5)


def test_failed_fp32_gate_installs_nothing(
    root: Path, embed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(*args: Any, **kwargs: Any) -> Callable[[TrainingList], Floats]:
        return lambda lst: np.full(len(lst.items), 7.0, dtype=np.float32)

    def exported(module: Any, args: Any, axes: Any, output: str, path: Path) -> int:
        shutil.copyfile(embed_dir / path.name, path)  # the graphs as exported before: fast
        return 18

    monkeypatch.setattr(embed_export, "embed_scorer", wrong)
    monkeypatch.setattr(embed_export, "export_graph", exported)
    target = root / "refused"
    encoder, head = load_embed(None)
    with pytest.raises(ParityError, match="export refused"):
        export_embed(encoder, head, target, variants=())
    assert not target.exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".refused")]
