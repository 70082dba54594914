"""Learned rankers for the evaluation: training lists from the training period, a stated
budget, training through `scoring.training`, export into a registry folder (with its gates).

Every kind trains twice, with and without the user's history, on the same lists: the only
difference is whether the history titles are in the input. The cascade joins the embed and
cross models trained with history. The evaluation then loads the exported versions through
`scoring.build_scorer`, so it measures the ONNX graphs (and variant) the worker would serve.

Training is deterministic (same lists, budget and seed give the same weights), so a version
trained for the same inputs is reused when its folder is still valid; the report says so.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from evaluation.protocol import Replay, Search
from evaluation.systems import Texts
from scoring.base import ModelError, load_verified
from scoring.kinds import ModelKind
from scoring.training.data import TrainingList

log = logging.getLogger(__name__)

INDEX_FILE = "evaluation-index.json"
# Bump when what goes into a model changes in a way the key below cannot see.
RECIPE = 1


@dataclass(frozen=True)
class Budget:
    """What each learned model may spend; written into the report."""

    # 3000 steps at 3e-3: on this data 600 steps at 1e-3 left the loss near uniform (3.87 vs
    # ln 50 = 3.91) and ranked below popularity; 1500 at 3e-3 was still improving when it
    # stopped. The head trains in seconds per hundred steps once the texts are embedded.
    embed_steps: int = 3000
    embed_lists_per_step: int = 16
    embed_lr: float = 3e-3
    # A cross step costs per pair: 16 pairs took 1-8 s here depending on what else shared the
    # two cores, so the cross budget is small on purpose (a few minutes per model).
    cross_steps: int = 120
    cross_lists_per_step: int = 2
    # Cross lists keep the positive and this many candidates in all (random negatives): fewer
    # pairs per list buy more lists for the same time.
    cross_candidates: int = 8
    cascade_k: int = 10
    seed: int = 0

    def describe(self) -> str:
        return (
            f"embed: {self.embed_steps} steps x {self.embed_lists_per_step} lists at lr "
            f"{self.embed_lr:g} (head only, encoder frozen); cross: {self.cross_steps} steps x "
            f"{self.cross_lists_per_step} lists of {self.cross_candidates} candidates (whole "
            f"MiniLM); cascade: embed top {self.cascade_k} re-scored by cross; seed {self.seed}"
        )


@dataclass
class Trained:
    name: str  # the system's name in the report
    kind: str  # a ModelKind value
    history: bool
    path: Path
    version: str
    seconds: float  # training + export, as measured when it was trained
    lists: int
    report: dict[str, Any] = field(default_factory=dict)
    loss_curve: list[float] = field(default_factory=list)
    reused: bool = False
    variant: str = ""  # the variant evaluated (and served by the worker): int8 or fp32 on CPU


def training_lists(
    searches: Sequence[Search],
    texts: Texts,
    *,
    history: bool,
    history_length: int,
    candidates: int | None = None,
    seed: int = 0,
) -> list[TrainingList]:
    """One list per training search whose positive the retriever found (the others hold
    nothing to learn from, and test searches like them are not ranked either)."""
    rng = random.Random(seed)
    out: list[TrainingList] = []
    for s in searches:
        pos = s.positive
        if pos is None or s.test:
            continue
        keep = list(range(len(s.candidates)))
        if candidates is not None and len(keep) > candidates:
            negatives = rng.sample([j for j in keep if j != pos], candidates - 1)
            keep = sorted([pos, *negatives])
        titles = tuple(texts.title(m) for m in s.history[:history_length]) if history else ()
        out.append(
            TrainingList(
                query=s.query,
                history=titles,
                items=tuple((s.candidates[j], texts.item(s.candidates[j])) for j in keep),
                labels=tuple(s.grade if j == pos else 0.0 for j in keep),
            )
        )
    return out


class Trainer:
    """Trains (or reuses) the evaluation's learned versions under `models_dir`."""

    def __init__(
        self,
        replay: Replay,
        models_dir: Path,
        budget: Budget,
        *,
        fresh: bool = False,
        variants: Sequence[str] = ("int8", "fp16"),
    ) -> None:
        self.replay = replay
        self.models_dir = Path(models_dir)
        self.budget = budget
        self.fresh = fresh
        # Reduced-precision variants to try at export (each ships only past its gate); the
        # scorer then serves what the worker would: int8 on CPU when it shipped.
        self.variants = tuple(variants)
        self.texts = Texts(replay.data.movies)
        self.models_dir.mkdir(parents=True, exist_ok=True)

    # --- the reuse index --------------------------------------------------------------------

    def _key(self, kind: ModelKind, history: bool, lists: Sequence[TrainingList]) -> str:
        digest = hashlib.sha256()
        for lst in lists:
            digest.update(json.dumps(lst.to_dict(), sort_keys=True).encode())
        # Only the budget fields of this kind: a new cross budget must not retrain embed.
        budget = {k: v for k, v in asdict(self.budget).items()
                  if k.startswith(kind.value) or k == "seed"}
        spec = {"recipe": RECIPE, "kind": kind.value, "history": history,
                "variants": self.variants, "budget": budget, "lists": digest.hexdigest()}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def _index(self) -> dict[str, Any]:
        path = self.models_dir / INDEX_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("%s is not JSON; ignoring it", path)
            return {}
        return data if isinstance(data, dict) else {}

    def _remember(self, key: str, trained: Trained) -> None:
        index = self._index()
        entry = asdict(trained)
        entry["path"] = str(trained.path)
        index[key] = entry
        tmp = self.models_dir / f".{INDEX_FILE}.tmp"
        tmp.write_text(json.dumps(index, indent=1) + "\n")
        tmp.replace(self.models_dir / INDEX_FILE)

    def _reuse(self, key: str) -> Trained | None:
        if self.fresh:
            return None
        entry = self._index().get(key)
        if not isinstance(entry, dict):
            return None
        path = Path(entry["path"])
        try:
            load_verified(path)
        except ModelError as exc:
            log.info("not reusing %s: %s", path, exc)
            return None
        entry = {**entry, "path": path, "reused": True, "variant": ""}
        return Trained(**entry)

    # --- training -------------------------------------------------------------------------

    def lists(self, kind: ModelKind, history: bool) -> list[TrainingList]:
        cands = self.budget.cross_candidates if kind is ModelKind.CROSS else None
        return training_lists(
            self.replay.train, self.texts, history=history,
            history_length=self.replay.config.history, candidates=cands, seed=self.budget.seed,
        )

    def _prepare(
        self, kind: ModelKind, history: bool
    ) -> tuple[str, list[TrainingList], str, Trained | None]:
        """(display name, training lists, reuse key, an earlier identical model or None)."""
        lists = self.lists(kind, history)
        name = kind.value if history else f"{kind.value} (no history)"
        key = self._key(kind, history, lists)
        found = self._reuse(key)
        if found is not None:
            log.info("%s: reusing %s (same lists and budget)", name, found.version)
        return name, lists, key, found

    def embed(self, *, history: bool) -> Trained:
        from scoring.training.export_ranker import export_embed
        from scoring.training.fit import train_embed

        name, lists, key, found = self._prepare(ModelKind.EMBED, history)
        if found is not None:
            return found
        b = self.budget
        started = time.perf_counter()
        with _steps_bar(name, b.embed_steps) as hook:
            encoder, head, report = train_embed(
                lists, steps=b.embed_steps, lists_per_step=b.embed_lists_per_step,
                lr=b.embed_lr, seed=b.seed, **_hook_arg(train_embed, hook),
            )
        metrics = self._metrics(name, report.as_dict(), len(lists), history)
        manifest = export_embed(encoder, head, models_dir=self.models_dir, metrics=metrics,
                                variants=self.variants)
        return self._done(key, name, ModelKind.EMBED, history, manifest.version, started, lists,
                          report.as_dict(), report.loss_curve)

    def cross(self, *, history: bool) -> Trained:
        from scoring.training.export_ranker import export_cross
        from scoring.training.fit import train_cross

        name, lists, key, found = self._prepare(ModelKind.CROSS, history)
        if found is not None:
            return found
        b = self.budget
        started = time.perf_counter()
        with _steps_bar(name, b.cross_steps) as hook:
            model, report = train_cross(
                lists, steps=b.cross_steps, lists_per_step=b.cross_lists_per_step,
                seed=b.seed, **_hook_arg(train_cross, hook),
            )
        metrics = self._metrics(name, report.as_dict(), len(lists), history)
        manifest = export_cross(model, models_dir=self.models_dir, metrics=metrics,
                                variants=self.variants)
        return self._done(key, name, ModelKind.CROSS, history, manifest.version, started, lists,
                          report.as_dict(), report.loss_curve)

    def cascade(self, embed: Trained, cross: Trained) -> Trained:
        from scoring.training.export_ranker import export_cascade

        started = time.perf_counter()
        manifest = export_cascade(
            embed.path, cross.path, models_dir=self.models_dir, k=self.budget.cascade_k,
            metrics={"evaluation": "movielens", "components_trained_with_history": True},
        )
        return Trained(
            name="cascade", kind=ModelKind.CASCADE.value, history=True,
            path=self.models_dir / manifest.version, version=manifest.version,
            seconds=round(time.perf_counter() - started, 1), lists=embed.lists + cross.lists,
        )

    def _metrics(
        self, name: str, report: dict[str, Any], lists: int, history: bool
    ) -> dict[str, Any]:
        return {
            "evaluation": "movielens", "system": name, "history": history,
            "training": report, "lists": lists, "budget": asdict(self.budget),
            "data": self.replay.data.summary(),
        }

    def _done(
        self, key: str, name: str, kind: ModelKind, history: bool, version: str, started: float,
        lists: Sequence[TrainingList], report: dict[str, Any], curve: list[float],
    ) -> Trained:
        trained = Trained(
            name=name, kind=kind.value, history=history, path=self.models_dir / version,
            version=version, seconds=round(time.perf_counter() - started, 1), lists=len(lists),
            report=report, loss_curve=[round(x, 5) for x in curve],
        )
        self._remember(key, trained)
        log.info("%s: trained and exported %s in %.0f s", name, version, trained.seconds)
        return trained


class _steps_bar:
    """A tqdm bar fed by the trainer's per-step hook, when the trainer offers one."""

    def __init__(self, name: str, steps: int) -> None:
        self.bar = tqdm(total=steps, desc=f"train {name}", unit="step", mininterval=1.0)

    def __enter__(self) -> Callable[[int, float], None]:
        def hook(step: int, loss: float) -> None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

        return hook

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def _hook_arg(fn: Callable[..., Any], hook: Callable[[int, float], None]) -> dict[str, Any]:
    # `on_step` is newer than the training loop itself; without it the bar stays at 0 and
    # the trainer's own progress log lines are all the feedback there is.
    if "on_step" in inspect.signature(fn).parameters:
        return {"on_step": hook}
    return {"progress": True}


__all__ = ["Budget", "Trained", "Trainer", "training_lists"]
