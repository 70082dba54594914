"""`streamrank model export | list | rollback`: the model registry."""

from __future__ import annotations

import argparse
import asyncio
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
    rollback = actions.add_parser("rollback", help="make every worker serve VERSION again",
                                  description=ROLLBACK)
    rollback.add_argument("version", help="a version from `streamrank model list`")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        return list_versions(settings)
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
