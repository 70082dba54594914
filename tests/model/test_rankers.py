"""Cross, embed and cascade scorers and the registry, on really exported base models."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from scoring import (
    CascadeScorer,
    CrossScorer,
    EmbedScorer,
    HybridScorer,
    ModelError,
    ModelRegistry,
    Scorer,
    ScoreRequest,
    ZeroShotScorer,
    build_scorer,
)
from scoring.base import sha256_file
from scoring.kinds import LEARNED_KINDS, kind_names
from scoring.registry import probe
from scoring.session import (
    CPU,
    Runner,
    check_io,
    chosen_provider,
    create_session,
    providers_for,
    unknown_last,
)
from tests.model.conftest import clone_version, flip_byte
from tests.unit.scoring.conftest import FakeScorer

# The first test here may carry the session's exports (zero-shot, embed, cross, cascade).
pytestmark = pytest.mark.timeout(900)

SHOES = [
    ("s1", "Men's trail running shoes, waterproof"),
    ("s2", "Women's lightweight road running sneakers"),
    ("s3", "Cushioned marathon running shoe with breathable mesh"),
]
OTHERS = [
    ("o1", "Scented soy candle gift set"),
    ("o2", "Stainless steel chef knife"),
    ("o3", "Children's picture book about dinosaurs"),
    ("o4", "Wireless bluetooth speaker"),
    ("o5", "Leather wallet for men"),
]
CATALOG = OTHERS[:2] + SHOES + OTHERS[2:]
HISTORY = ["trail running", "Nike Pegasus trail runner", "", "marathon training sneakers"]
REQUESTS = [
    ScoreRequest("running shoes", HISTORY, [("x", ""), *CATALOG, ("y", "")]),
    ScoreRequest("gift", [], list(reversed(CATALOG))),
    ScoreRequest("knife", ["kitchen"], [("z", ""), ("o2", OTHERS[1][1])]),
    ScoreRequest("nothing", ["a"], []),
]


@pytest.fixture(scope="module")
def embed(embed_dir: Path) -> EmbedScorer:
    # fp32: these tests compare numbers exactly with the zero-shot and cascade fp32 paths
    # (on a CPU the default would be the int8 variant when it shipped).
    return EmbedScorer(embed_dir, device="cpu", variant="fp32")


@pytest.fixture(scope="module")
def cross(cross_dir: Path) -> CrossScorer:
    return CrossScorer(cross_dir, device="cpu", max_pairs=4)


@pytest.fixture(scope="module")
def cascade(cascade_dir: Path) -> CascadeScorer:
    return CascadeScorer(cascade_dir, device="cpu", cascade_k=3)


@pytest.fixture(scope="module")
def hybrid(hybrid_dir: Path) -> HybridScorer:
    return HybridScorer(hybrid_dir, device="cpu", variant="fp32")


@pytest.fixture(params=kind_names(LEARNED_KINDS))
def ranker(
    request: pytest.FixtureRequest, embed: EmbedScorer, cross: CrossScorer,
    cascade: CascadeScorer, hybrid: HybridScorer,
) -> Scorer:
    scorers: dict[str, Scorer] = {"embed": embed, "cross": cross, "cascade": cascade,
                                  "hybrid": hybrid}
    return scorers[request.param]


def _order(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda j: (-scores[j], j))


def test_one_finite_score_per_candidate_unknown_last(ranker: Scorer) -> None:
    result = ranker.score(REQUESTS)
    out = result.scores
    assert isinstance(ranker, Scorer) and ranker.provider == "CPUExecutionProvider"
    assert [len(s) for s in out] == [len(r.candidates) for r in REQUESTS]
    assert all(isinstance(x, float) and math.isfinite(x) for row in out for x in row)
    first = out[0]
    order = _order(first)
    # The two unknown items come last, in their original order (x before y).
    assert order[-2:] == [0, len(first) - 1]
    assert out[2][0] < out[2][1]
    # Scores follow their candidates: request 1 lists the catalog reversed (the hybrid also
    # reads the site's position, a behaviour feature: its scores may move with the order).
    again = ranker.score([ScoreRequest("gift", [], CATALOG)]).scores[0]
    if ranker.name != "hybrid":
        np.testing.assert_allclose(again, list(reversed(out[1])), atol=1e-3)
    # The call's own stage timings come back with its scores.
    assert result.timings and all(v >= 0 for v in result.timings.values())
    assert ranker.variant_decision.variant in ("fp32", "int8")


def test_batched_equals_one_at_a_time(ranker: Scorer) -> None:
    together = ranker.score(REQUESTS).scores
    alone = [ranker.score([r]).scores[0] for r in REQUESTS]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
        assert _order(a) == _order(b)


def test_untrained_embed_ranks_like_zero_shot(embed: EmbedScorer, models_dir: Path) -> None:
    # The base head's output layer is zero: score = query . item, i.e. zero-shot's cosine.
    zeroshot = build_scorer("zeroshot", models_dir, device="cpu", history_weight=0.0)
    assert isinstance(zeroshot, ZeroShotScorer)
    request = ScoreRequest("running shoes for trails", [], CATALOG)
    np.testing.assert_allclose(
        embed.score([request]).scores[0], zeroshot.score([request]).scores[0], atol=1e-4
    )


def test_warm_items_spares_searches_the_item_encoding(embed_dir: Path) -> None:
    scorer = EmbedScorer(embed_dir, device="cpu", batch_size=4)
    assert scorer.caches_items and scorer.item_misses == 0  # the variant check is not counted
    assert scorer.warm_items([*CATALOG, ("u", ""), CATALOG[0]]) == len(CATALOG)
    assert scorer.warm_items(CATALOG) == 0  # already cached
    assert scorer.warmed_items == len(CATALOG) and scorer.encoded_items == 0
    calls = scorer.encode_calls
    scorer.score(REQUESTS)
    assert scorer.encoded_items == 0 and scorer.item_misses == 0
    assert scorer.encode_calls == calls + 1  # queries and history: one batched call
    cached = scorer.score(REQUESTS)
    assert scorer.encode_calls == calls + 1  # everything cached now
    assert cached.timings["encode"] == 0.0 and scorer.head_calls == 2
    # A changed catalog text is a new key: encoded once, by the search that meets it.
    scorer.score([ScoreRequest("gift", [], [("o1", "Scented candle, lavender")])])
    assert scorer.encoded_items == 1


def test_cross_chunks_do_not_change_scores(cross_dir: Path, cross: CrossScorer) -> None:
    wide = CrossScorer(cross_dir, device="cpu", max_pairs=64)
    runs = cross.runs
    small = cross.score(REQUESTS)
    known = sum(1 for r in REQUESTS for _, t in r.candidates if t)
    assert cross.runs - runs == math.ceil(known / 4)
    for a, b in zip(small.scores, wide.score(REQUESTS).scores, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    assert set(small.timings) == {"tokenize", "inference"}
    assert not cross.caches_items and cross.warm_items(CATALOG) == 0


def test_cascade_rescores_the_top_k(cascade: CascadeScorer) -> None:
    request = REQUESTS[0]
    result = cascade.score([request])
    final = result.scores[0]
    first = cascade.embed.score([request]).scores[0]
    top = _order(first)[:3]
    logits = cascade.cross.score_pairs(
        [(request.query, request.history, request.candidates[j][1]) for j in top]
    )
    by_cross = [top[i] for i in sorted(range(3), key=lambda i: (-logits[i], i))]
    rest = [j for j in _order(first) if j not in top]
    assert _order(final) == by_cross + rest
    assert min(final[j] for j in top) > max(final[j] for j in rest)
    assert {"tokenize", "encode", "head", "inference"} <= set(result.timings)


def test_cascade_k_zero_is_embed_only(cascade_dir: Path, embed: EmbedScorer) -> None:
    off = CascadeScorer(cascade_dir, device="cpu", cascade_k=0, variant="fp32")
    assert off.cascade_k == 0 and off.cross.pairs_scored == 0
    np.testing.assert_allclose(
        off.score(REQUESTS[:2]).scores[0], embed.score(REQUESTS[:2]).scores[0], atol=1e-5
    )
    assert CascadeScorer(cascade_dir, device="cpu").cascade_k == 10  # from the manifest


# --- registry -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(ranker_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private registry (other tests may add versions to models_dir) linking the exports."""
    root = tmp_path_factory.mktemp("registry")
    for path in ranker_dirs.values():
        os.symlink(path, root / path.name)
    return root


def test_versions_latest_find(registry: Path, ranker_dirs: dict[str, Path], tmp_path: Path) -> None:
    reg = ModelRegistry(registry)
    kinds = {v.kind: v for v in reg.versions()}
    assert set(kinds) == set(kind_names(LEARNED_KINDS))
    for kind, path in ranker_dirs.items():
        assert reg.latest(kind) == registry / path.name
        assert reg.find(kinds[kind].version) == registry / path.name
        assert kinds[kind].variants[0] == "fp32"
    assert reg.latest("sentence-encoder") is None
    with pytest.raises(ModelError, match="no version 'cross-00000000'"):
        reg.find("cross-00000000")
    # latest() goes by the manifest's creation time, not by folder name.
    clone_version(ranker_dirs["cross"], registry / "a-newer-cross", created="2999-01-01T00:00:00")
    try:
        assert reg.latest("cross") == registry / "a-newer-cross"
    finally:
        for f in (registry / "a-newer-cross").iterdir():
            f.unlink()
        (registry / "a-newer-cross").rmdir()
    assert ModelRegistry(tmp_path / "missing").versions() == []


@pytest.mark.parametrize("kind", kind_names(LEARNED_KINDS))
def test_load_validates_and_build_scorer_finds_latest(
    kind: str, registry: Path, ranker_dirs: dict[str, Path]
) -> None:
    scorer = ModelRegistry(registry).load(ranker_dirs[kind].name, device="cpu", threads=1)
    assert scorer.name == kind and scorer.version.startswith(f"{kind}-")
    built = build_scorer(kind, registry, device="cpu")
    assert built.version == scorer.version
    assert build_scorer(kind, registry, device="cpu", version=scorer.version).name == kind


def test_build_scorer_without_a_version_says_how_to_export(tmp_path: Path, cross_dir: Path) -> None:
    with pytest.raises(ModelError, match="streamrank model export --kind cascade"):
        build_scorer("cascade", tmp_path)
    with pytest.raises(ValueError, match=r"unknown options \['colour'\]"):
        ModelRegistry(tmp_path).load(cross_dir, colour="red")


def test_corrupted_version_is_refused(cross_dir: Path, tmp_path: Path) -> None:
    bad = clone_version(cross_dir, tmp_path / "bad")
    flip_byte(bad / "cross.onnx")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        ModelRegistry(tmp_path).load("bad", device="cpu")
    assert sha256_file(cross_dir / "cross.onnx") != sha256_file(bad / "cross.onnx")
    CrossScorer(cross_dir, device="cpu")  # the original is untouched


def test_mismatched_graphs_are_refused(cross_dir: Path, tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    # A cross folder that claims to be an embed model has none of its graphs.
    clone_version(cross_dir, tmp_path / "claims-embed", kind="embed")
    with pytest.raises(ModelError, match=r"does not list 'encoder\.onnx'"):
        reg.load("claims-embed", device="cpu")
    # Graphs whose inputs and outputs are not the kind's are refused by name.
    fake = {"fp32": {"files": {"encoder": "cross.onnx", "head": "cross.onnx"}}}
    clone_version(cross_dir, tmp_path / "wrong-io", kind="embed", variants=fake)
    with pytest.raises(ModelError, match="expected inputs"):
        reg.load("wrong-io", device="cpu")
    clone_version(cross_dir, tmp_path / "odd-kind", kind="reranker-9000")
    with pytest.raises(ModelError, match="unknown model kind 'reranker-9000'"):
        reg.load("odd-kind", device="cpu")


def test_manifest_sha256_must_match(cross_dir: Path) -> None:
    reg = ModelRegistry(cross_dir.parent)
    good = sha256_file(cross_dir / "manifest.json")
    assert reg.load(cross_dir, device="cpu", manifest_sha256=good).name == "cross"
    with pytest.raises(ModelError, match="does not match"):
        reg.load(cross_dir, device="cpu", manifest_sha256="0" * 64)


def test_probe_refuses_broken_output() -> None:
    with pytest.raises(ModelError, match="non-finite"):
        probe(FakeScorer(nan=True))
    with pytest.raises(ModelError, match="probe run failed: RuntimeError: boom"):
        probe(FakeScorer(error=RuntimeError("boom")))


# --- session helpers ----------------------------------------------------------------------


def test_cpu_session_io_check_and_plain_run(cross_dir: Path) -> None:
    session = create_session(cross_dir / "cross.onnx", device="cpu", threads=1)
    assert chosen_provider(session) == CPU and providers_for("cpu") == [CPU]
    check_io(session, ["token_type_ids", "input_ids", "attention_mask"], ["logits"])
    with pytest.raises(ModelError, match="expected inputs"):
        check_io(session, ["input_ids", "attention_mask"], ["embedding"], what="x.onnx")
    runner = Runner(session, ["logits"])
    ids = np.array([[101, 2770, 6007, 102]], dtype=np.int32)  # cast to the graph's int64
    (logits,) = runner.run(
        {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
    )
    assert logits.shape == (1,) and np.isfinite(logits).all()


class _Binding:
    def __init__(self) -> None:
        self.inputs: dict[str, np.ndarray] = {}
        self.outputs: list[tuple[str, str]] = []

    def bind_cpu_input(self, name: str, value: np.ndarray) -> None:
        self.inputs[name] = value

    def bind_output(self, name: str, device: str) -> None:
        self.outputs.append((name, device))

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        return [np.full(2, 7.0, dtype=np.float32) for _ in self.outputs]


class _Arg:
    def __init__(self, name: str, type_: str) -> None:
        self.name, self.type = name, type_


class _CudaSession:
    """Stands in for a CUDA session (none here) to check the IOBinding path of Runner."""

    def __init__(self) -> None:
        self.binding = _Binding()
        self.ran = 0

    def get_providers(self) -> list[str]:
        return ["CUDAExecutionProvider", CPU]

    def get_inputs(self) -> list[_Arg]:
        return [_Arg("query", "tensor(float16)")]

    def io_binding(self) -> _Binding:
        return self.binding

    def run_with_iobinding(self, binding: _Binding) -> None:
        self.ran += 1

    def run(self, *args: object) -> None:
        raise AssertionError("a CUDA session runs through IOBinding")


def test_runner_binds_inputs_and_device_outputs_on_cuda() -> None:
    session = _CudaSession()
    out = Runner(session, ["scores"]).run({"query": np.ones((2, 3))})  # type: ignore[arg-type]
    assert session.ran == 1 and session.binding.outputs == [("scores", "cuda")]
    assert session.binding.inputs["query"].dtype == np.float16  # the graph's declared type
    np.testing.assert_array_equal(out[0], [7.0, 7.0])


def test_unknown_last_keeps_order_and_finiteness() -> None:
    scores = unknown_last([0.5, float("nan"), 2.0], ["a", "", "b", "c", ""])
    assert all(math.isfinite(s) for s in scores)
    assert _order(scores) == [3, 0, 2, 1, 4]
    assert unknown_last([], ["", ""]) == pytest.approx([-1e-4, -2e-4])
