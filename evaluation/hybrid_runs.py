"""The learned rankers of the behaviour evaluation: the hybrid (seeds, ablations, the exported
version) and LightGBM LambdaMART, all trained on the same training-period lists.

Lists: every rankable training search (its positive was retrieved), with the features the
behaviour replay built and the texts the worker would send (query, the 10 most recent titles,
candidate catalog texts). Validation: the latest `validation` share of them by time; the test
period is never seen in training or model choice. Text embeddings (MiniLM) are computed once
per run and cached on disk (keyed by the texts), shared by every fit that uses the base encoder.

Systems returned: "hybrid" (the exported version of the seed with the best validation NDCG@10,
scored through the ONNX HybridScorer from behaviour inputs, as served), one diagnostic row per
seed (torch), the ablations (torch; seed 0) and LightGBM. `info` holds what the report states.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluation.behaviour_replay import BehaviourData
from evaluation.gbdt import fit_lambdamart
from evaluation.protocol import Replay, Search
from evaluation.systems import Floats, Precomputed, ServedHybrid, System, Texts
from scoring.base import TOKENIZER_FILE
from scoring.features import FeatureSpec, Featurizer
from scoring.training.hybrid_data import HybridList, TextTable
from scoring.training.hybrid_fit import HybridConfig, HybridFit, fit_hybrid, split_by_time
from scoring.training.models import base_encoder, base_model_path

log = logging.getLogger(__name__)

HYBRID = "hybrid"


@dataclass(frozen=True)
class HybridBudget:
    """What the learned rankers may spend; stated in the report."""

    seeds: int = 3
    epochs: int = 8
    patience: int = 2
    batch: int = 64
    lr: float = 1e-3
    finetune_steps: int = 60
    finetune_lists: int = 16
    ablations: bool = True
    gbdt_seeds: int = 1
    validation: float = 0.1
    threads: int = 2

    def config(self, seed: int, **switches: Any) -> HybridConfig:
        return HybridConfig(epochs=self.epochs, patience=self.patience, batch=self.batch,
                            lr=self.lr, validation=self.validation, seed=seed,
                            finetune_steps=self.finetune_steps,
                            finetune_lists=self.finetune_lists, threads=self.threads,
                            **switches)

    def describe(self) -> str:
        return (f"hybrid: {self.seeds} seeds, {self.config(0).describe()}; ablations "
                f"{'seed 0' if self.ablations else 'off'}; LightGBM: {self.gbdt_seeds} seed(s), "
                f"up to 1000 trees, early stopping after 50; torch and LightGBM on "
                f"{self.threads} threads")


@dataclass
class Learned:
    systems: list[System] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    served: ServedHybrid | None = None


def text_table(texts: Sequence[str], cache_dir: Path, *, keep_states: bool) -> TextTable:
    """Base-MiniLM embeddings of `texts`, from the disk cache when the same texts were
    embedded before (a cache entry is keyed by the texts and whether states were kept)."""
    unique = sorted(set(texts))
    key = hashlib.sha256("\n".join(unique).encode()).hexdigest()[:16]
    path = cache_dir / f"texts-{key}{'-states' if keep_states else ''}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            states = z["states"] if keep_states else None
            offsets = z["offsets"] if keep_states else None
            return TextTable(list(z["texts"]), z["vectors"], states, offsets)
    featurizer = Featurizer.from_file(base_model_path() / TOKENIZER_FILE, FeatureSpec())
    table = TextTable.embed(unique, base_encoder(), featurizer, keep_states=keep_states)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        if keep_states and table.states is not None and table.offsets is not None:
            np.savez(fh, texts=np.asarray(table.texts), vectors=table.vectors,
                     states=table.states, offsets=table.offsets)
        else:
            np.savez(fh, texts=np.asarray(table.texts), vectors=table.vectors)
    tmp.replace(path)
    return table


class HybridRuns:
    def __init__(self, rep: Replay, behaviour: BehaviourData, budget: HybridBudget,
                 models_dir: Path, cache_dir: Path, *, variants: Sequence[str] = ("int8",),
                 history_length: int = 10) -> None:
        self.rep, self.behaviour, self.budget = rep, behaviour, budget
        self.models_dir, self.cache_dir = Path(models_dir), Path(cache_dir)
        self.variants, self.history_length = tuple(variants), history_length
        self.texts = Texts(rep.data.movies)
        self.timings: dict[str, float] = {}
        self.gbdt_info: list[dict[str, Any]] = []

    def lists(self, searches: Sequence[Search]) -> list[HybridList]:
        h = self.history_length
        return [HybridList(
            query=s.query, history=tuple(self.texts.title(m) for m in s.history[:h]),
            items=tuple((m, self.texts.item(m)) for m in s.candidates),
            features=self.behaviour.of(s), labels=tuple(s.labels), ts=s.ts,
        ) for s in searches]

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 1)

    def run(self, test: Sequence[Search]) -> Learned:
        b = self.budget
        torch.set_num_threads(b.threads)
        train_searches = [s for s in self.rep.train if s.positive is not None]
        train, test_lists = self.lists(train_searches), self.lists(test)
        started = time.perf_counter()
        texts = [t for x in (*train, *test_lists)
                 for t in (x.query, *x.history, *(i[1] for i in x.items))]
        table = text_table(texts, self.cache_dir, keep_states=b.finetune_steps > 0)
        self._timed("text embeddings (cached after the first run)", started)
        out = Learned(info={"budget": asdict(b), "budget_text": b.describe(),
                            "train_lists": len(train), "test_lists": len(test_lists)})
        f = self.behaviour.spec.size
        fits: list[HybridFit] = []
        for seed in range(b.seeds):
            started = time.perf_counter()
            fits.append(fit_hybrid(train, n_features=f, config=b.config(seed), table=table))
            self._timed(f"train hybrid seed {seed}", started)
            scores = _by_index(test, fits[-1].scores(test_lists))
            out.systems.append(Precomputed(f"hybrid (seed {seed}, torch)", scores,
                                           diagnostic=True))
        out.info["seeds"] = [fit.report for fit in fits]
        if b.ablations:
            out.systems += self._ablations(train, test, test_lists, table, fits[0])
        out.systems += self._gbdt(train, test, test_lists)
        best = max(range(len(fits)), key=lambda i: fits[i].report.get(
            "best_validation_ndcg") or 0.0)
        out.served = self._export(fits[best], best, test)
        out.info["served_seed"] = best
        out.systems.append(out.served)
        out.info["timings"] = self.timings
        return out

    def _ablations(self, train: list[HybridList], test: Sequence[Search],
                   test_lists: list[HybridList], table: TextTable,
                   full: HybridFit) -> list[System]:
        out: list[System] = []
        f = self.behaviour.spec.size
        frozen = full.frozen if full.frozen is not None else full
        out.append(Precomputed("hybrid without fine-tuning (seed 0)",
                               _by_index(test, frozen.scores(test_lists)), diagnostic=True))
        for name, switches in (("hybrid without text", {"text": False}),
                               ("hybrid without features", {"features": False}),
                               ("hybrid without history", {"history": False})):
            started = time.perf_counter()
            cfg = replace(self.budget.config(0, **switches), finetune_steps=0)
            fit = fit_hybrid(train, n_features=f, config=cfg, table=table)
            self._timed(f"train {name}", started)
            out.append(Precomputed(f"{name} (seed 0)", _by_index(test, fit.scores(test_lists)),
                                   diagnostic=True))
        return out

    def _gbdt(self, train: list[HybridList], test: Sequence[Search],
              test_lists: list[HybridList]) -> list[System]:
        fit_ids, val_ids = split_by_time(train, self.budget.validation)
        names = list(self.behaviour.spec.names)
        xs = [x.features for x in train]
        ys = [x.labels for x in train]
        out: list[System] = []
        for seed in range(self.budget.gbdt_seeds):
            started = time.perf_counter()
            model = fit_lambdamart([xs[i] for i in fit_ids], [ys[i] for i in fit_ids],
                                   [xs[i] for i in val_ids], [ys[i] for i in val_ids], names,
                                   seed=seed, threads=self.budget.threads)
            self._timed(f"train LightGBM seed {seed}", started)
            scores = _by_index(test, model.score([x.features for x in test_lists]))
            name = "LightGBM LambdaMART" if seed == 0 else f"LightGBM LambdaMART (seed {seed})"
            out.append(Precomputed(name, scores, diagnostic=seed > 0))
            self.gbdt_info.append(model.info)
        return out

    def _export(self, fit: HybridFit, seed: int, test: Sequence[Search]) -> ServedHybrid:
        from scoring import build_scorer
        from scoring.training.export_ranker import export_hybrid

        started = time.perf_counter()
        manifest = export_hybrid(
            fit.encoder, fit.model, self.behaviour.spec, self.behaviour.neighbours,
            models_dir=self.models_dir, variants=self.variants,
            metrics={"evaluation": "movielens", "seed": seed, "training": fit.report})
        self._timed("export hybrid", started)
        scorer = build_scorer(HYBRID, self.models_dir,
                              version=str(self.models_dir / manifest.version), device="cpu")
        return ServedHybrid(HYBRID, scorer, self.texts, self.behaviour.inputs,
                            self.behaviour.features, history_length=self.history_length)


def _by_index(searches: Sequence[Search], scores: Sequence[Floats]) -> dict[int, Floats]:
    return {s.index: np.asarray(x, np.float64) for s, x in zip(searches, scores, strict=True)}


__all__ = ["HYBRID", "HybridBudget", "HybridRuns", "Learned", "text_table"]
