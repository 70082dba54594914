"""`streamrank eval movielens`: replay, behaviour state, train, score every system, report.

Steps: load (same-second ratings in a seeded order) and replay the ratings as searches;
replay the behaviour state the worker would keep (evaluation/behaviour_replay.py) and build
every rankable search's features; the non-learned baselines (evaluation/rules.py picks their
variants on validation); the learned rankers: the hybrid (seeds, ablations, the exported
version served through ONNX) and LightGBM over the same features (evaluation/hybrid_runs.py);
the older text-only kinds (embed, cross, cascade) only when `kinds` names them.

Two populations of test searches, both only searches whose positive the retriever found:
- "full test period": every such search (or a seeded sample of `limit`), scored by every
  system except the cross-encoder ones;
- "cross subset": a seeded sample of `cross_searches` of them, scored by every system; a
  cross-encoder costs 0.4-2 s per 50-candidate search on this CPU, so it cannot rank all
  (only when the cross or cascade kind is evaluated).
"""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm  # type: ignore[import-untyped]

from evaluation import movielens
from evaluation.behaviour_replay import BehaviourData, replay_behaviour
from evaluation.hybrid_runs import HybridBudget, HybridRuns, Learned
from evaluation.learned import Budget, Trained, Trainer
from evaluation.protocol import ProtocolConfig, Replay, Search, replay, seen_stats
from evaluation.report import plot_delta, plot_ndcg, plot_path, plot_training, render, write
from evaluation.results import MRR, NDCG, Scored, Table, goal, segment_index, tables
from evaluation.rules import pick
from evaluation.systems import ScorerSystem, SeenDemoted, System, Texts, baselines
from scoring import build_scorer
from scoring.behaviour_spec import BehaviourSpec
from scoring.kinds import ModelKind
from scoring.quality import bootstrap, paired_bootstrap, per_list

log = logging.getLogger(__name__)

FULL, SUBSET = "full test period", "cross subset"


@dataclass(frozen=True)
class EvalConfig:
    data: Path
    out: Path
    models_dir: Path  # where the evaluation's trained versions go (not the serving registry)
    zeroshot_dir: Path  # the registry holding zeroshot-minilm
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    budget: Budget = field(default_factory=Budget)  # the text-only kinds (embed, cross)
    hybrid: HybridBudget = field(default_factory=HybridBudget)
    spec: BehaviourSpec = field(default_factory=BehaviourSpec)
    neighbour_refresh: int = 10_000  # training ratings between co-occurrence snapshots
    limit: int | None = None  # at most this many test searches scored (seeded sample)
    cross_searches: int = 100
    kinds: tuple[str, ...] = (ModelKind.HYBRID.value,)  # learned ModelKind values
    zeroshot: bool = True  # the untrained MiniLM baselines
    cache_dir: Path | None = None  # text embeddings (default: beside models_dir)
    fresh: bool = False
    variants: tuple[str, ...] = ("int8", "fp16")  # export variants to try (tests: none)
    kafka: bool = False
    kafka_searches: int = 600
    kafka_rate: float | None = None
    kafka_port: int | None = None  # None: a throwaway broker on a free port
    device: str = "cpu"
    command: str = "streamrank eval movielens"
    progress: bool = True


@dataclass
class Outcome:
    tables: list[Table]
    meta: dict[str, Any]
    markdown: Path
    json: Path


def _sample(searches: Sequence[Search], n: int | None, seed: int) -> list[Search]:
    if n is None or n >= len(searches):
        return list(searches)
    picked = random.Random(seed).sample(range(len(searches)), n)
    return [searches[i] for i in sorted(picked)]


def _totals(rep: Replay, limit: int | None, scored: int) -> dict[str, int] | None:
    """Test searches per segment including the retriever's misses (None under a --limit
    sample: the misses of a sample are not defined)."""
    if limit is not None and scored < len(rep.segments()["all"]):
        return None
    return {name: len(index) for name, index in segment_index(rep.test,
                                                             rep.config.warm_min).items()}


def _score(system: System, searches: Sequence[Search], progress: bool) -> tuple[list[Any], float]:
    started = time.perf_counter()
    out: list[Any] = []
    step = 64
    with tqdm(total=len(searches), desc=f"score {system.name}", unit="search",
              disable=not progress, mininterval=1.0) as bar:
        for start in range(0, len(searches), step):
            chunk = searches[start : start + step]
            out += system.score(chunk)
            bar.update(len(chunk))
    return out, round(time.perf_counter() - started, 1)


class Evaluation:
    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        self.timings: dict[str, float] = {}
        self.trained: list[Trained] = []
        self.learned: Learned | None = None
        self.meta: dict[str, Any] = {}

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 1)

    def text_kinds(self, rep: Replay, texts: Texts) -> tuple[list[System], list[System]]:
        """The older text-only learned kinds named in `kinds`: (full population, subset)."""
        c = self.config
        hist = rep.config.history
        cheap: list[System] = []
        expensive: list[System] = []
        kinds = {ModelKind(k) for k in c.kinds}
        embed, cross, cascade = ModelKind.EMBED, ModelKind.CROSS, ModelKind.CASCADE
        wanted = [(kind, history) for kind in (embed, cross) if kind in kinds
                  for history in (True, False)]
        if cascade in kinds:  # its components: the models trained with history
            wanted += [(embed, True), (cross, True)]
        if not wanted:
            return cheap, expensive
        trainer = Trainer(rep, c.models_dir, c.budget, fresh=c.fresh, variants=c.variants)
        train = {embed: trainer.embed, cross: trainer.cross}
        made: dict[tuple[ModelKind, bool], Trained] = {}
        for kind, history in dict.fromkeys(wanted):
            started = time.perf_counter()
            made[(kind, history)] = train[kind](history=history)
            self._timed(f"train+export {made[(kind, history)].name}", started)
        if cascade in kinds:
            started = time.perf_counter()
            made[(cascade, True)] = trainer.cascade(made[(embed, True)], made[(cross, True)])
            self._timed("export cascade", started)
        for (made_kind, history), t in made.items():
            if made_kind not in kinds:
                continue
            scorer = build_scorer(made_kind.value, c.models_dir, version=str(t.path),
                                  device=c.device)  # type: ignore[arg-type]
            t.variant = scorer.variant_decision.variant
            self.trained.append(t)
            system = ScorerSystem(t.name, scorer, texts, history=history, learned=True,
                                  history_length=hist)
            (cheap if made_kind is embed else expensive).append(system)
        return cheap, expensive

    def systems(self, rep: Replay, behaviour: BehaviourData, full: list[Search]
                ) -> tuple[list[System], list[System]]:
        """(systems for the full population, expensive ones for the cross subset)."""
        c = self.config
        texts = Texts(rep.data.movies)
        hist = rep.config.history
        cheap: list[System] = list(baselines())
        train = sorted((s for s in rep.train if s.positive is not None), key=lambda s: s.ts)
        validation = train[len(train) - int(len(train) * c.hybrid.validation):]
        rules, figures = pick(behaviour, validation)
        cheap += rules
        self.meta["rule_validation_ndcg"] = figures
        if c.zeroshot:
            zs = build_scorer("zeroshot", c.zeroshot_dir, device=c.device)  # type: ignore[arg-type]
            cheap.append(ScorerSystem("zero-shot (no history)", zs, texts, history=False,
                                      learned=False, history_length=hist))
            cheap.append(ScorerSystem("zero-shot", zs, texts, history=True, learned=False,
                                      history_length=hist))
        more, expensive = self.text_kinds(rep, texts)
        cheap += more
        if ModelKind.HYBRID.value in c.kinds:
            started = time.perf_counter()
            runs = HybridRuns(rep, behaviour, c.hybrid, c.models_dir,
                              c.cache_dir or c.models_dir.parent / "cache",
                              variants=c.variants, history_length=hist)
            self.learned = runs.run(full)
            self.timings.update(runs.timings)
            self.meta["gbdt"] = runs.gbdt_info
            self._timed("learned rankers ready (hybrid + LightGBM, training included)", started)
            cheap += self.learned.systems
        return cheap, expensive

    def run(self) -> Outcome:
        c = self.config
        begun = started = time.perf_counter()
        data = movielens.load(c.data, tie_seed=c.protocol.seed)
        rep = replay(data, c.protocol, progress=c.progress)
        self._timed("load + replay", started)
        started = time.perf_counter()
        behaviour = replay_behaviour(rep, c.spec, refresh=c.neighbour_refresh,
                                     progress=c.progress)
        self._timed("behaviour replay (state + features of every search)", started)
        self.meta["behaviour"] = behaviour.info
        full = _sample(rep.segments()["all"], c.limit, c.protocol.seed)
        subset = _sample(full, c.cross_searches, c.protocol.seed + 1)
        position = {s.request_id: i for i, s in enumerate(full)}
        sub_index = np.array([position[s.request_id] for s in subset], dtype=np.intp)

        started = time.perf_counter()
        cheap, expensive = self.systems(rep, behaviour, full)
        self._timed("systems ready (training included)", started)
        full_scored: list[Scored] = []
        scores_by_name: dict[str, list[Any]] = {}
        for system in cheap:
            scores, seconds = _score(system, full, c.progress)
            scores_by_name[system.name] = scores
            full_scored.append(Scored.of(system, full, scores, seconds))
            self.timings[f"score {system.name}"] = seconds
        for system in cheap:
            if isinstance(system, ScorerSystem) and system.learned and system.personalized:
                diag = SeenDemoted(system)
                full_scored.append(Scored.of(
                    diag, full, diag.apply(full, scores_by_name[system.name]), 0.0))
        if self.learned is not None and self.learned.served is not None:
            served = self.learned.served
            self.meta["served_features_equal"] = {"equal": served.matches,
                                                  "searches": served.compared}
        recall = rep.recall()
        totals = _totals(rep, c.limit, len(full))
        all_tables = tables(FULL, full, full_scored, recall, c.protocol.warm_min, totals)
        if expensive:
            sub_scored = [s.take(sub_index) for s in full_scored]
            for system in expensive:
                scores, seconds = _score(system, subset, c.progress)
                sub_scored.append(Scored.of(system, subset, scores, seconds))
                self.timings[f"score {system.name}"] = seconds
            all_tables += tables(SUBSET, subset, sub_scored, recall, c.protocol.warm_min)

        kafka: dict[str, Any] | None = None
        if c.kafka:
            started = time.perf_counter()
            kafka = self.kafka(rep, full, full_scored, cheap)
            self._timed("kafka replay", started)
        self._timed("total", begun)
        return self.report(rep, full, subset, all_tables, kafka)

    # --- Kafka ------------------------------------------------------------------------------

    def kafka(self, rep: Replay, full: list[Search], scored: list[Scored],
              cheap: list[System]) -> dict[str, Any]:
        """Replay a sample through a broker and worker serving the learned personalized embed
        model (else zero-shot) and compare with the offline figures on the same searches."""
        from streams.kafka.broker_config import free_port
        from streams.kafka.local_broker import broker_for_session
        from streams.tools.worker_process import worker_env

        c = self.config
        trained = next((t for t in self.trained if t.kind == "embed" and t.history), None)
        name = trained.name if trained else "zero-shot"
        sample = _sample(full, c.kafka_searches, c.protocol.seed + 2)
        with tempfile.TemporaryDirectory(prefix="streamrank-eval-") as tmp, \
                broker_for_session(c.kafka_port or free_port(), Path(tmp)) as broker:
            env = worker_env(broker.bootstrap_servers, Path(tmp) / "state", uuid.uuid4().hex[:8],
                             models_dir=c.models_dir if trained else c.zeroshot_dir,
                             app_prefix="eval", partitions=4)
            env.update(kafka_env(rep, trained))
            run = asyncio.run(_run_kafka(rep, sample, broker.bootstrap_servers, env,
                                         Path(tmp) / "worker.log", c))
        offline = next(s for s in scored if s.name == name)
        position = {s.request_id: i for i, s in enumerate(full)}
        index = np.array([position[s.request_id] for s in sample], dtype=np.intp)
        out = compare_online(name, offline.take(index), run, sample)
        out["offline_batch_check"] = self.batch_check(
            next(s for s in cheap if s.name == name), sample, offline.take(index))
        return out

    def batch_check(self, system: System, sample: list[Search], offline: Scored) -> dict[str, Any]:
        """The same offline scoring one search per call: how much rankings move with the
        batch alone (dynamic int8 quantizes each batch with its own scale)."""
        if not isinstance(system, ScorerSystem):
            return {}
        alone = ScorerSystem(system.name, system.scorer, system.texts, history=system.history,
                             learned=system.learned, history_length=system.history_length,
                             batch=1)
        single = per_list(alone.score(sample), [s.labels for s in sample])
        return {
            "variant": system.scorer.variant_decision.variant,
            "batch": system.batch,
            "same_positive_rank": int(np.isclose(single[MRR], offline.metrics[MRR]).sum()),
            "searches": len(sample),
        }

    # --- the report ----------------------------------------------------------------------------

    def report(self, rep: Replay, full: list[Search], subset: list[Search],
               all_tables: list[Table], kafka: dict[str, Any] | None) -> Outcome:
        c = self.config
        out = c.out
        out.parent.mkdir(parents=True, exist_ok=True)
        plots = [plot_ndcg([t for t in all_tables if t.population == FULL],
                           plot_path(out, "ndcg")),
                 plot_delta(all_tables, plot_path(out, "delta"))]
        curves = {t.name: t.loss_curve for t in self.trained}
        learned = self.learned.info if self.learned is not None else {}
        validation = {f"hybrid seed {i}": r.get("validation_ndcg", [])
                      for i, r in enumerate(learned.get("seeds", []))}
        curve = plot_training(curves, plot_path(out, "training"), validation)
        if curve is not None:
            plots.append(curve)
        goals = {f"{t.population}/{t.segment}": goal(t) for t in all_tables}
        kinds = {ModelKind(k) for k in c.kinds}
        text_kinds = bool(kinds & {ModelKind.EMBED, ModelKind.CROSS, ModelKind.CASCADE})
        meta: dict[str, Any] = {
            "command": c.command, "replay": rep.describe(), "budget": asdict(c.budget),
            "budget_text": c.budget.describe() if text_kinds else "",
            "timings_s": self.timings, "kinds": list(c.kinds),
            "populations": {FULL: len(full), SUBSET: len(subset) if text_kinds else 0},
            "trained": [{k: v for k, v in asdict(t).items() if k != "loss_curve"}
                        for t in self.trained],
            "goal": goals, "kafka": kafka, "limit": c.limit, "seen": seen_stats(full),
            "spec": c.spec.to_dict(), "learned": learned, **self.meta,
        }
        from evaluation.summary import sections  # the prose around the tables

        markdown = render(meta, all_tables, plots, sections(meta, rep, all_tables))
        md, js = write(out, markdown, {**meta, "tables": [t.as_dict() for t in all_tables]})
        return Outcome(all_tables, meta, md, js)


def kafka_env(rep: Replay, trained: Trained | None) -> dict[str, str]:
    """Worker settings that make it rank exactly as the offline run: same model, same history
    window, and no deadline (quality is measured here, not latency)."""
    env = {
        "STREAMRANK_HISTORY_LENGTH": str(rep.config.history),
        "STREAMRANK_SEQUENCE_LENGTH": str(max(20, rep.config.history)),
        "STREAMRANK_SCORE_TIMEOUT_MS": "120000",
        "STREAMRANK_DEVICE": "cpu",
    }
    if trained is not None:
        env |= {"STREAMRANK_SCORER": trained.kind, "STREAMRANK_MODEL_VERSION": str(trained.path)}
    return env


async def _run_kafka(rep: Replay, sample: list[Search], bootstrap: str, env: dict[str, str],
                     log_path: Path, c: EvalConfig) -> Any:
    from evaluation.kafka_replay import run_replay

    return await run_replay(rep, sample, bootstrap=bootstrap, env=env, log_path=log_path,
                            rate=c.kafka_rate, progress=c.progress)


def compare_online(name: str, offline: Scored, run: Any, sample: list[Search]) -> dict[str, Any]:
    """Online (Kafka) against offline figures of the same model on the same searches."""
    online = per_list(run.scores(), [s.labels for s in sample])
    offline_rank = offline.metrics
    # With one positive per search, equal MRR means the positive sat at the same rank.
    same_rank = int(np.isclose(online[MRR], offline_rank[MRR]).sum())
    on, off = bootstrap(online[NDCG]), bootstrap(offline_rank[NDCG])
    return {
        "system": name, "searches": len(sample), "model_version": run.model_version,
        "provider": run.provider, "seconds": run.seconds, "degraded": run.degraded,
        "actions_published": run.actions_published, "catalog_published": run.catalog_published,
        "worker_ms_p50": run.worker_ms_p50,
        "online": {NDCG: on.as_dict(), MRR: bootstrap(online[MRR]).as_dict()},
        "offline": {NDCG: off.as_dict(), MRR: bootstrap(offline_rank[MRR]).as_dict()},
        "delta_ndcg": paired_bootstrap(online[NDCG], offline_rank[NDCG]).as_dict(),
        "same_positive_rank": same_rank,
        "agree": on.overlaps(off),
    }


def run_movielens(config: EvalConfig, echo: Callable[[str], None] = print) -> Outcome:
    outcome = Evaluation(config).run()
    echo(outcome.markdown.read_text())
    return outcome


__all__ = ["EvalConfig", "Evaluation", "Outcome", "compare_online", "kafka_env",
           "run_movielens"]

