"""One fine-tune run: captured samples → challenger → held-out duel → export (if it wins).

The steps (docs/training.md): build lists from the samples, hold out the most recent ones,
estimate position propensities on the rest, fine-tune a challenger from the champion when it
is of the trained kind (else from the base model), score the held-out lists with both, apply
the promotion rule, and only then export the challenger through the parity gates into the
registry. Kafka is not touched here: streams/learning/ reads the samples and publishes.

The champion is scored by its served ONNX graphs (what users got); the challenger by torch
eager before export, which the export's fp32 parity gate then ties to its graphs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm  # type: ignore[import-untyped]

from contracts import TrainingSample
from scoring.base import TOKENIZER_FILE, ModelError, ScoreRequest, load_verified
from scoring.features import FeatureSpec, Featurizer
from scoring.kinds import ModelKind
from scoring.registry import ModelRegistry
from scoring.training.challenge import Decision, Rule, decide, evaluate_scores
from scoring.training.data import TrainingList
from scoring.training.eager import ScoreFn, cross_scorer, embed_scorer
from scoring.training.export_ranker import export_cross, export_embed
from scoring.training.fit import train_cross, train_embed
from scoring.training.models import base_model_path
from scoring.training.parity import ParityError
from scoring.training.samples import (
    CapturedList,
    ItemText,
    build_lists,
    holdout_split,
    no_text,
    position_propensity,
    with_features,
    with_positive,
)

log = logging.getLogger(__name__)

SCORE_CHUNK = 32  # held-out searches per champion scorer call


@dataclass(frozen=True)
class Plan:
    """What a run trains and how it decides (CLI flags of `streamrank train`)."""

    kind: ModelKind = ModelKind.EMBED  # a trainable kind (ModelKind.trainable)
    steps: int = 300
    lists_per_step: int = 16
    lr: float | None = None  # None: train_embed / train_cross defaults
    seed: int = 0
    device: str = "cpu"
    train_encoder: bool = False  # embed: the text encoder too (slower, bigger export)
    holdout: float = 0.2
    min_train_lists: int = 20
    min_holdout_lists: int = 10
    weighted: bool = True  # decide on IPS-weighted NDCG@10 (position-aware)
    rule: Rule = "significant"
    min_delta: float = 0.0
    rounds: int = 1000  # bootstrap resamples
    init: Path | None = None  # start here instead of the champion / base
    epochs: int = 8  # hybrid: at most this many epochs (early stopping on validation)

    def __post_init__(self) -> None:
        # A kind name from the command line becomes the enum; a cascade is assembled, not
        # trained.
        kind = ModelKind(self.kind)
        if not kind.trainable:
            raise ValueError(f"cannot train a {kind.value!r} model directly")
        object.__setattr__(self, "kind", kind)


@dataclass
class Outcome:
    """What a run did; the report and the history file are written from it."""

    started: str
    champion: str
    promoted: bool = False
    reason: str = ""
    challenger: str | None = None  # the exported version, when there is one
    path: Path | None = None
    parent: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    propensity: list[float] = field(default_factory=list)
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    loss_curve: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path) if self.path else None
        return data

    def update_metrics(self) -> dict[str, float]:
        """Flat figures for ModelUpdate.metrics (floats only)."""
        out: dict[str, float] = {}
        for name, interval in self.metrics.get("challenger", {}).items():
            out[name] = interval["mean"]
        if self.decision is not None:
            out["gain_low"] = float(self.decision["delta"]["low"])
        out["held_out_lists"] = float(self.data.get("held_out_lists", 0))
        return out


def _requests(lists: Sequence[CapturedList]) -> list[ScoreRequest]:
    return [ScoreRequest(c.ranked.query, list(c.ranked.history), list(c.ranked.items))
            for c in lists]


def score_with_registry(
    registry: ModelRegistry, ref: Path | str, lists: Sequence[CapturedList], device: str
) -> tuple[str, list[list[float]]]:
    """(version, scores) of a registry version's served graphs on `lists`."""
    scorer = registry.load(ref, device="cpu" if device == "cpu" else "auto")
    requests = _requests(lists)
    scores: list[list[float]] = []
    for start in range(0, len(requests), SCORE_CHUNK):
        scores.extend(scorer.score(requests[start : start + SCORE_CHUNK]).scores)
    return scorer.version, scores


def _start(plan: Plan, champion: Path) -> tuple[Path | None, str, FeatureSpec]:
    """(init folder or None for the base, its version, feature spec) of the challenger."""
    init = plan.init
    if init is None and load_verified(champion).kind == plan.kind:
        init = champion  # fine-tune what serves, when it is of the kind being trained
    if init is None:
        return None, "", FeatureSpec()
    manifest = load_verified(init)
    return init, manifest.version, FeatureSpec.from_dict(manifest.features)


def _train(
    plan: Plan, lists: list[TrainingList], init: Path | None, spec: FeatureSpec, progress: bool
) -> tuple[ScoreFn, Any, dict[str, Any], list[float]]:
    """Train; returns the torch scorer, an export callable's model, report, loss curve."""
    lr = {} if plan.lr is None else {"lr": plan.lr}
    bar = tqdm(total=plan.steps, desc="training", unit="step", disable=not progress)

    def tick(step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    common: dict[str, Any] = dict(
        init=init, steps=plan.steps, lists_per_step=plan.lists_per_step, seed=plan.seed,
        device=plan.device, spec=spec, on_step=tick, **lr,
    )
    featurizer = Featurizer.from_file((init or base_model_path()) / TOKENIZER_FILE, spec)
    try:
        if plan.kind is ModelKind.EMBED:
            encoder, head, report = train_embed(
                lists, train_encoder=plan.train_encoder, **common
            )
            return embed_scorer(encoder, head, featurizer), (encoder, head), report.as_dict(), \
                report.loss_curve
        model, report = train_cross(lists, **common)
        return cross_scorer(model, featurizer), (model,), report.as_dict(), report.loss_curve
    finally:
        bar.close()


def _export(
    plan: Plan, modules: tuple[Any, ...], models_dir: Path, spec: FeatureSpec,
    metrics: dict[str, Any], parent: str,
) -> Path:
    if plan.kind is ModelKind.HYBRID:
        from scoring.training.finetune_hybrid import export

        start, fit = modules
        return export(start, fit, models_dir, metrics, parent)
    if plan.kind is ModelKind.EMBED:
        manifest = export_embed(*modules, models_dir=models_dir, spec=spec, metrics=metrics,
                                parent=parent)
    else:
        manifest = export_cross(*modules, models_dir=models_dir, spec=spec, metrics=metrics,
                                parent=parent)
    return models_dir / manifest.version


def finetune(
    samples: Sequence[TrainingSample],
    champion: Path,
    models_dir: Path,
    plan: Plan,
    *,
    item_text: ItemText = no_text,
    progress: bool = False,
) -> Outcome:
    """One run; never raises for "not promoted" outcomes (they carry the reason). Samples
    name items by id: `item_text` gives the text a model reads for each (the catalog's)."""
    clock = time.perf_counter()
    seconds: dict[str, float] = {}
    registry = ModelRegistry(models_dir)
    out = Outcome(started=datetime.now(UTC).isoformat(timespec="seconds"),
                  champion=load_verified(champion).version, plan=_plan_dict(plan))
    lists, stats = build_lists(samples, item_text)
    out.data = stats.as_dict()
    if len(lists) < 2:
        out.reason = f"not enough data: {len(lists)} lists from {stats.samples} samples"
        return out
    labelled = with_positive(lists)
    hybrid = None
    if plan.kind is ModelKind.HYBRID:
        from scoring.training.finetune_hybrid import hybrid_start

        found = hybrid_start(plan.init, champion)
        if isinstance(found, str):
            out.reason = found
            return out
        hybrid = found
        # Features of another spec mean other things: only this spec's lists are usable.
        labelled = with_features(labelled, hybrid.spec.id)
        out.data["feature_spec"] = hybrid.spec.id
    if len(labelled) < 2:
        out.reason = f"not enough data: {len(labelled)} lists with a positive label" + (
            f" and features of spec {hybrid.spec.id}" if hybrid else "")
        return out
    # The split counts lists with a positive: searches nobody acted on teach and test nothing
    # (they only inform the propensities), and a quiet recent hour must not empty the holdout.
    train_lists, held = holdout_split(labelled, plan.holdout)
    boundary = held[0].ts
    out.data.update(train_lists=len(train_lists), held_out_lists=len(held),
                    held_out_from_ts=boundary)
    if len(train_lists) < plan.min_train_lists or len(held) < plan.min_holdout_lists:
        out.reason = (f"not enough data: {len(train_lists)} training lists (need "
                      f"{plan.min_train_lists}) and {len(held)} held-out lists with a positive "
                      f"(need {plan.min_holdout_lists})")
        return out
    propensity = position_propensity([c for c in lists if c.ts < boundary])
    out.propensity = [round(float(p), 4) for p in propensity]

    if hybrid is None:
        init, parent, spec = _start(plan, champion)
        score_fn, modules, out.train, out.loss_curve = _train(
            plan, [c.ranked for c in train_lists], init, spec, progress
        )
    else:
        from scoring.training.finetune_hybrid import train_hybrid

        parent, spec = hybrid.version, FeatureSpec()
        fit, hybrid_rows = train_hybrid(hybrid, train_lists, held, hybrid_config(plan))
        modules, out.train = (hybrid, fit), fit.report
    out.parent = parent
    seconds["train"] = round(time.perf_counter() - clock, 2)

    mark = time.perf_counter()
    version, champ_scores = _champion_scores(registry, champion, hybrid, held, plan)
    rows = hybrid_rows if hybrid is not None else [np.asarray(score_fn(c.ranked)) for c in tqdm(
        held, desc="scoring held-out", unit="list", disable=not progress)]
    champ = evaluate_scores(version, held, champ_scores, propensity, rounds=plan.rounds,
                            seed=plan.seed)
    chall = evaluate_scores("challenger", held, rows, propensity, rounds=plan.rounds,
                            seed=plan.seed)
    decision = decide(champ, chall, weighted=plan.weighted, rule=plan.rule,
                      min_delta=plan.min_delta)
    out.metrics = {"champion": champ.summary(), "challenger": chall.summary()}
    out.decision = decision.as_dict()
    out.reason = decision.reason
    seconds["evaluate"] = round(time.perf_counter() - mark, 2)
    log.info("champion %s vs challenger: %s", version, decision.reason)
    if decision.promote:
        mark = time.perf_counter()
        _promote(out, plan, modules, models_dir, spec, parent, decision)
        seconds["export"] = round(time.perf_counter() - mark, 2)
    seconds["total"] = round(time.perf_counter() - clock, 2)
    out.seconds = seconds
    return out


def hybrid_config(plan: Plan) -> Any:
    """The hybrid's budget from the run's flags (steps: the encoder's top-layer fine-tuning,
    only with --train-encoder)."""
    from scoring.training.hybrid_fit import HybridConfig

    return HybridConfig(epochs=plan.epochs, batch=plan.lists_per_step,
                        lr=plan.lr if plan.lr is not None else HybridConfig.lr, seed=plan.seed,
                        finetune_steps=plan.steps if plan.train_encoder else 0)


def _champion_scores(
    registry: ModelRegistry, champion: Path, hybrid: Any, held: Sequence[CapturedList],
    plan: Plan,
) -> tuple[str, Sequence[Sequence[float] | npt.NDArray[np.floating]]]:
    """A hybrid champion of the challenger's spec is scored on the logged features (torch);
    any other by its served graphs, which read no features."""
    if hybrid is not None:
        from scoring.training.finetune_hybrid import champion_scores

        found = champion_scores(champion, hybrid.spec, held, hybrid_config(plan).history_items)
        if found is not None:
            return found
    return score_with_registry(registry, champion, held, plan.device)


def _promote(
    out: Outcome, plan: Plan, modules: tuple[Any, ...], models_dir: Path, spec: FeatureSpec,
    parent: str, decision: Decision,
) -> None:
    metrics = {
        "held_out": out.metrics["challenger"], "champion": out.champion,
        "champion_held_out": out.metrics["champion"], "decision": decision.as_dict(),
        "data": out.data, "budget": out.plan, "training": out.train,
    }
    try:
        path = _export(plan, modules, models_dir, spec, metrics, parent)
    except (ParityError, ModelError) as exc:
        out.promoted = False
        out.reason = f"won the duel but the export was refused: {exc}"
        log.error("%s", out.reason)
        return
    out.promoted, out.path, out.challenger = True, path, path.name
    log.info("challenger %s installed at %s", path.name, path)


def _plan_dict(plan: Plan) -> dict[str, Any]:
    data = asdict(plan)
    data["init"] = str(plan.init) if plan.init else None
    return data


__all__ = ["Outcome", "Plan", "finetune", "score_with_registry"]
