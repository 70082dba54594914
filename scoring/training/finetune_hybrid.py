"""The hybrid kind in a fine-tune run: captured samples with logged features → challenger.

A hybrid challenger starts from a hybrid version (`--init`, else the champion when it is one)
and keeps that version's behaviour spec and co-occurrence neighbours: the samples carry the
feature vectors the serving scorer built with them, so a model trained on those vectors must
be served with the same spec and neighbours. (Refreshing the neighbours needs the behaviour
itself, not the logged features: the evaluation's replay does that.) Only lists whose logged
features follow that spec (`TrainingSample.feature_spec == spec.id`) are used.

Training is scoring/training/hybrid_fit.fit_hybrid (graded listwise loss, time-based
validation with early stopping, optionally the encoder's top layer), starting from the
version's encoder; the texts of the training and held-out lists are embedded once. A hybrid
champion is scored in torch from its own version (load_hybrid) on the held-out lists' logged
features, which its served graphs match within the export's parity tolerance.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring.base import TOKENIZER_FILE, load_verified
from scoring.behaviour_spec import BehaviourSpec
from scoring.features import FeatureSpec, Featurizer
from scoring.kinds import ModelKind
from scoring.neighbours import Neighbours
from scoring.training.export_ranker.hybrid import export_hybrid, load_hybrid
from scoring.training.hybrid_data import HybridList, TextTable
from scoring.training.hybrid_fit import HybridConfig, HybridFit, fit_hybrid
from scoring.training.hybrid_model import HybridRanker
from scoring.training.models import base_model_path
from scoring.training.reference import SentenceEmbedder
from scoring.training.samples import CapturedList

log = logging.getLogger(__name__)

Scores = list[npt.NDArray[np.float64]]


@dataclass(frozen=True)
class HybridStart:
    """The hybrid version a challenger starts from: its torch side, spec and neighbours."""

    path: Path
    version: str
    encoder: SentenceEmbedder
    model: HybridRanker
    spec: BehaviourSpec
    neighbours: Neighbours


def is_hybrid(path: Path) -> bool:
    return load_verified(path).kind == ModelKind.HYBRID.manifest_kind


def hybrid_start(init: Path | None, champion: Path) -> HybridStart | str:
    """The version to start from, or why there is none (a reason for the run's outcome)."""
    path = init if init is not None else (champion if is_hybrid(champion) else None)
    if path is None:
        return ("no hybrid version to start from: the champion is not one and no --init was "
                "given (a hybrid's spec and neighbours come from a version: export one first)")
    encoder, model, spec, neighbours = load_hybrid(path)
    return HybridStart(path, load_verified(path).version, encoder, model, spec, neighbours)


def hybrid_lists(lists: Sequence[CapturedList]) -> list[HybridList]:
    """The lists as the hybrid trainer reads them (each must carry its features)."""
    out = []
    for c in lists:
        if c.features is None:
            raise ValueError(f"list {c.request_id} has no logged features")
        out.append(HybridList(query=c.ranked.query, history=c.ranked.history,
                              items=c.ranked.items, features=c.features,
                              labels=c.ranked.labels, ts=c.ts))
    return out


def _table(lists: Sequence[HybridList], encoder: SentenceEmbedder, history_items: int,
           keep_states: bool) -> TextTable:
    featurizer = Featurizer.from_file(base_model_path() / TOKENIZER_FILE,
                                      FeatureSpec(history_items=history_items))
    texts = [t for x in lists for t in (x.query, *x.history, *(text for _, text in x.items))]
    return TextTable.embed(texts, encoder, featurizer, keep_states=keep_states)


def train_hybrid(
    start: HybridStart, train: Sequence[CapturedList], held: Sequence[CapturedList],
    config: HybridConfig,
) -> tuple[HybridFit, Scores]:
    """(the fitted challenger, its scores on `held`)."""
    train_lists, held_lists = hybrid_lists(train), hybrid_lists(held)
    table = _table([*train_lists, *held_lists], start.encoder, config.history_items,
                   keep_states=config.finetune_steps > 0)
    fit = fit_hybrid(train_lists, n_features=start.spec.size, config=config,
                     encoder=start.encoder, table=table)
    # fit.table: the tuned encoder's embeddings when its top layer was fine-tuned.
    return fit, fit.scores(held_lists)


def champion_scores(champion: Path, spec: BehaviourSpec, held: Sequence[CapturedList],
                    history_items: int) -> tuple[str, Scores] | None:
    """(version, scores) of a hybrid champion of the same spec on the held-out lists, in torch
    from its own version; None when the champion is not such a hybrid."""
    if not is_hybrid(champion):
        return None
    encoder, model, own, _ = load_hybrid(champion)
    if own.id != spec.id:
        return None
    lists = hybrid_lists(held)
    config = HybridConfig(history_items=history_items)
    fit = HybridFit(model.eval(), encoder, _table(lists, encoder, history_items, False), config)
    return load_verified(champion).version, fit.scores(lists)


def export(start: HybridStart, fit: HybridFit, models_dir: Path, metrics: dict[str, Any],
           parent: str) -> Path:
    manifest = export_hybrid(fit.encoder, fit.model, start.spec, start.neighbours,
                             models_dir=models_dir, metrics=metrics, parent=parent)
    return models_dir / manifest.version


__all__ = ["HybridStart", "champion_scores", "export", "hybrid_lists", "hybrid_start",
           "is_hybrid", "train_hybrid"]
