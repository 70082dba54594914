"""`streamrank model export | list | show | rollback`: the model registry."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from scoring.kinds import ModelKind, kind_names

if TYPE_CHECKING:
    from streams.settings import Settings

DESCRIPTION = """\
The model registry is a folder of exported ONNX model versions (STREAMRANK_MODELS_DIR, default
~/.cache/streamrank/models) that workers load and `streamrank train` adds to."""

EXPORT = """\
Export a model into the registry (needs the train extra: pip install 'streamrank[train]').
zeroshot: the pretrained sentence encoder, the default a worker serves (a worker exports it
itself when missing). embed, cross, cascade: an untrained base of a learned ranker, the
starting point `streamrank train` fine-tunes."""

SHOW = """\
Everything a version's manifest records: kind, lineage, the features it reads, the variants it
ships with their parity and gates, and, for a trained version, its held-out quality against the
champion, the data it was trained on and the budget it ran with."""

ROLLBACK = """\
Announce an earlier registry version on the models topic: every running worker swaps back to
it. `streamrank model list` shows the versions."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("model", help="export, list or roll back the models workers serve",
                       description=DESCRIPTION)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="export a model into the registry",
                                description=EXPORT)
    export.add_argument("--kind", choices=kind_names(), default=ModelKind.ZEROSHOT.value,
                        help="which model")
    export.add_argument("--cascade-k", type=int, default=10,
                        help="cascade: candidates the cross-encoder re-scores")
    actions.add_parser("list", help="the registry's versions: kind, variants, created",
                       description="List the registry's versions, oldest first.")
    show = actions.add_parser("show", help="what a version is and how it was made",
                              description=SHOW)
    show.add_argument("version", help="a version from `streamrank model list`, or a folder")
    rollback = actions.add_parser("rollback", help="make every worker serve VERSION again",
                                  description=ROLLBACK)
    rollback.add_argument("version", help="a version from `streamrank model list`")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        return list_versions(settings)
    if args.action == "show":
        return show(settings, args.version)
    if args.action == "rollback":
        return rollback(settings, args.version)
    return export(settings, ModelKind(args.kind), args.cascade_k)


def list_versions(settings: Settings) -> int:
    from scoring import ModelRegistry

    versions = ModelRegistry(settings.models_dir).versions()
    if not versions:
        print(f"no models in {settings.models_dir}. Export the zero-shot model with "
              f"`streamrank model export` (or a base ranker: `streamrank model export --kind "
              f"embed`); STREAMRANK_MODELS_DIR chooses the folder.")
        return 0
    for v in versions:
        print(f"{v.version:<32} {v.kind:<17} {','.join(v.variants):<15} {v.created} {v.path}")
    return 0


def show(settings: Settings, version: str) -> int:
    from scoring import ModelError, ModelRegistry
    from scoring.base import Manifest

    try:
        path = ModelRegistry(settings.models_dir).resolve(version)
        manifest = Manifest.load(path)
    except ModelError as exc:
        print(f"{exc} (`streamrank model list` shows the versions in {settings.models_dir})")
        return 1
    print(describe(manifest, str(path)))
    return 0


def describe(manifest: Any, path: str) -> str:
    """A version's manifest as a person reads it (scoring.base.Manifest)."""
    m = manifest
    metrics: Mapping[str, Any] = m.metrics
    size = sum(1 for _ in m.files)
    lines = [
        f"{m.version}  ({m.kind}, {m.name})", f"  folder:   {path}",
        f"  created:  {m.created or '?'}   parent: {m.parent or '(none: a base version)'}",
        f"  files:    {size}, opset {m.opset}, max length {m.max_length}, "
        f"embedding dim {m.embedding_dim}",
    ]
    if metrics.get("untrained"):
        lines.append("  trained:  no (an untrained base: `streamrank train` fine-tunes it)")
    if m.components:
        lines.append("  components: " + ", ".join(f"{r}={v}" for r, v in m.components.items()))
    lines += _section("features", m.features)
    export = metrics.get("export", {})
    lines.append("variants:")
    for variant in ("fp32", "int8", "fp16"):
        shipped = variant in m.variants
        status = export.get(variant, {}).get("status") if variant != "fp32" else "reference"
        parity = (m.variants.get(variant, {}) or {}).get("parity") or \
            export.get(variant, {}).get("parity", {})
        figures = ", ".join(f"{k} {parity[k]}" for k in ("mean_tau", "min_tau", "min_top10",
                                                          "max_ndcg_drop") if k in parity)
        shown = status if status and status not in ("shipped", "reference") else ""
        lines.append(f"  {variant:<5} {'shipped' if shipped else 'not shipped':<12}"
                     f"{' ' + shown if shown else ''}{':' if shown and figures else ''}"
                     f"{' ' + figures if figures else ''}")
    if m.probe:
        probes = m.probe.get("lists")
        count = len(probes) if isinstance(probes, list) else "?"
        lines.append(f"  probe: {count} lists with fp32 reference scores (each serving machine "
                     "gates its int8/fp16 variant on them at load)")
    lines += _section("parity (fp32 against torch)", m.parity)
    for key, title in (("held_out", "quality on held-out searches (this version)"),
                       ("champion_held_out", "the champion it replaced, same searches"),
                       ("decision", "promotion decision"), ("data", "training data"),
                       ("budget", "training budget"), ("training", "training run")):
        if key in metrics:
            lines += _section(title, metrics[key])
    others = {k: v for k, v in metrics.items() if k not in {
        "export", "untrained", "held_out", "champion_held_out", "decision", "data", "budget",
        "training", "champion"}}
    lines += _section("other metrics", others)
    if m.versions:
        lines.append("built with: " + ", ".join(f"{k} {v}" for k, v in m.versions.items()))
    return "\n".join(lines)


def _section(title: str, values: Any) -> list[str]:
    if not values:
        return []
    return [f"{title}:", *(f"  {key}: {value}" for key, value in _flat(values))]


def _flat(values: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Nested mappings as dotted keys (lists longer than 8 shortened)."""
    if isinstance(values, Mapping) and depth < 3:
        for key, value in values.items():
            yield from _flat(value, f"{prefix}{key}." if depth < 2 else f"{prefix}{key}",
                             depth + 1) if isinstance(value, Mapping) else \
                [(f"{prefix}{key}", _short(value))]
    else:
        yield prefix.rstrip("."), _short(values)


def _short(value: Any) -> Any:
    if isinstance(value, list) and len(value) > 8:
        return f"{value[:8]} … ({len(value)} values)"
    return value


def export(settings: Settings, kind: ModelKind, cascade_k: int) -> int:
    # torch is imported on this path only
    if kind is ModelKind.ZEROSHOT:
        from scoring.training.export import ensure_encoder

        print(ensure_encoder(settings.models_dir))
    else:
        from scoring.training.export_ranker import ensure_base_ranker

        print(ensure_base_ranker(kind, settings.models_dir, cascade_k=cascade_k))
    return 0


def rollback(settings: Settings, version: str) -> int:
    from streams.kafka.connection import KafkaClients
    from streams.learning.rollout import rollback as announce

    update = asyncio.run(announce(KafkaClients(settings), settings.topics.models,
                                  settings.models_dir, version, settings.replication_factor))
    print(f"published ModelUpdate {update.version} ({update.uri}) on {settings.topics.models}")
    return 0
