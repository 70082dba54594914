"""`streamrank train`: flags, and one run from samples to rollout.

A run: read samples (the samples topic, or a JSONL file) and the item texts they name (the
catalog topic, or a product file) → find the champion (the model the last ModelUpdate
announced, else the worker's configured one) → scoring.training.finetune →
publish a ModelUpdate if the challenger was promoted and installed → write the report.
Kafka, ONNX Runtime and torch are imported inside the functions: building the CLI parser loads
none of them (torch only once a training run starts).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoring.kinds import TRAINABLE_KINDS, ModelKind, kind_names
from streams.cli.options import duration, existing_path, time_text

if TYPE_CHECKING:
    from scoring import ModelRegistry
    from streams.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = """\
Fine-tune a challenger model on the training samples the workers captured (what users were
shown and what they then did), compare it with the model being served on the most recent
samples it did not train on, and if it clearly wins, install it and announce it on the models
topic: every worker then swaps to it. Writes a report with figures and plots either way.
docs/training.md explains the data, the promotion rule, the report and rollback."""


def add_parser(sub: Any) -> None:
    """Add the `train` command to the CLI's sub-parsers."""
    p = sub.add_parser("train", help="learn from captured samples; promote the model if it wins",
                       description=DESCRIPTION)
    src = p.add_argument_group("samples (default: the whole samples topic)")
    src.add_argument("--samples", type=existing_path, metavar="FILE",
                     help="a JSONL file of TrainingSamples instead of the topic")
    src.add_argument("--since", type=time_text, metavar="TIME",
                     help="from this time: epoch ms, ISO 8601, or a duration ago (24h)")
    src.add_argument("--until", type=time_text, metavar="TIME", help="up to this time (same forms)")
    src.add_argument("--from-offset", type=int, help="from this offset in every partition")
    src.add_argument("--save-samples", type=Path, metavar="FILE",
                     help="also write the samples read to this JSONL file")
    src.add_argument("--products", type=existing_path, metavar="FILE",
                     help="item texts from this product file (CSV, as `streamrank bench` "
                          "reads) instead of the catalog topic: samples name items by id")
    model = p.add_argument_group("model")
    model.add_argument("--kind", choices=kind_names(TRAINABLE_KINDS),
                       default=ModelKind.EMBED.value, help="which ranker to train")
    model.add_argument("--champion", metavar="VERSION",
                       help="version to beat (default: the version workers were last told to "
                            "serve, else STREAMRANK_MODEL_VERSION, else the newest of "
                            "STREAMRANK_SCORER)")
    model.add_argument("--init", metavar="VERSION",
                       help="start from this version instead of the champion or the base")
    model.add_argument("--steps", type=int, default=300, help="optimizer steps")
    model.add_argument("--lists-per-step", type=int, default=16, help="ranked lists per step")
    model.add_argument("--lr", type=float, default=None,
                       help="learning rate (default: the kind's own)")
    model.add_argument("--seed", type=int, default=0, help="seed of sampling and initialization")
    model.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                       help="where torch trains")
    model.add_argument("--train-encoder", action="store_true",
                       help="embed: tune the text encoder too, not only the head; hybrid: "
                            "also the encoder's top layer, for --steps steps")
    model.add_argument("--epochs", type=int, default=8,
                       help="hybrid: at most this many epochs over the training lists "
                            "(early stopping on the latest 10%% by time); --lists-per-step "
                            "is its batch")
    duel = p.add_argument_group("promotion")
    duel.add_argument("--holdout", type=float, default=0.2,
                      help="share of the most recent lists held out for the comparison")
    duel.add_argument("--min-train-lists", type=int, default=20,
                      help="fewer lists to train on: no run")
    duel.add_argument("--min-holdout-lists", type=int, default=10,
                      help="fewer held-out lists: no run")
    duel.add_argument("--rule", choices=["significant", "always"], default="significant",
                      help="significant: promote when the 95%% interval of the NDCG@10 gain "
                           "lies above --min-gain; always: promote whatever the figures (they "
                           "are still reported)")
    duel.add_argument("--min-gain", type=float, default=0.0, help="NDCG@10 gain to require")
    duel.add_argument("--plain", action="store_true",
                      help="decide on plain NDCG@10 instead of the position-aware (IPS) one")
    duel.add_argument("--bootstrap-rounds", type=int, default=1000,
                      help="resamples for the 95%% intervals")
    duel.add_argument("--no-publish", action="store_true",
                      help="install a winner in the registry, but announce nothing")
    p.add_argument("--report-dir", type=Path, default=Path("var/training"), metavar="FOLDER",
                   help="reports go to a dated folder inside")
    p.add_argument("--every", type=duration, default=None, metavar="DURATION",
                   help="run again every DURATION (30m, 6h, 1d) until stopped")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def champion_path(settings: Settings, registry: ModelRegistry, wanted: str | None) -> Path:
    """The version to beat: `wanted`, else what the models topic says workers serve, else
    what a worker would start with."""
    from scoring import ZEROSHOT_MODEL, ModelError
    from streams.kafka.connection import KafkaClients
    from streams.learning.rollout import current_update

    if wanted:
        return registry.find(wanted)
    update = asyncio.run(current_update(KafkaClients(settings), settings.topics.models))
    if update is not None:
        uri = Path(update.uri)
        return uri if uri.is_dir() else registry.find(update.version)
    if settings.model_version:
        return registry.resolve(settings.model_version)
    if settings.scorer is ModelKind.ZEROSHOT:
        return settings.models_dir / ZEROSHOT_MODEL
    latest = registry.latest(settings.scorer)
    if latest is None:
        raise ModelError(f"no {settings.scorer} model in {settings.models_dir} to compare with")
    return latest


def _samples(args: argparse.Namespace, settings: Settings) -> list[Any]:
    from scoring.training.samples import read_samples_file, write_samples_file
    from streams.durations import parse_time
    from streams.kafka.connection import KafkaClients
    from streams.learning.samples_reader import read_samples

    if args.samples is not None:
        samples = read_samples_file(args.samples)
    else:
        samples = asyncio.run(read_samples(
            KafkaClients(settings), settings.topics.samples,
            since_ms=parse_time(args.since) if args.since else None,
            until_ms=parse_time(args.until) if args.until else None,
            from_offset=args.from_offset, progress=not args.quiet,
        ))
    if args.save_samples is not None:
        write_samples_file(args.save_samples, samples)
    return samples


def _item_texts(args: argparse.Namespace, settings: Settings) -> dict[str, str]:
    """item_id -> the text a model reads: from --products, else the catalog topic now."""
    if args.products is not None:
        from streams.tools.products import read_products

        return {item.item_id: item.text() for item in read_products(args.products)}
    from streams.kafka.connection import KafkaClients
    from streams.learning.catalog_reader import read_catalog_texts

    return asyncio.run(read_catalog_texts(KafkaClients(settings), settings.topics.catalog))


def train_once(args: argparse.Namespace, settings: Settings) -> int:
    """One run; 0 whether or not the challenger was promoted (the report says which)."""
    from scoring import ModelRegistry
    from scoring.training.finetune import Plan, finetune
    from scoring.training.report import write_report
    from streams.kafka.connection import KafkaClients
    from streams.learning.rollout import publish_update, update_for

    registry = ModelRegistry(settings.models_dir)
    samples = _samples(args, settings)
    champion = champion_path(settings, registry, args.champion)
    plan = Plan(
        kind=args.kind, steps=args.steps, lists_per_step=args.lists_per_step, lr=args.lr,
        seed=args.seed, device=args.device, train_encoder=args.train_encoder,
        holdout=args.holdout, min_train_lists=args.min_train_lists,
        min_holdout_lists=args.min_holdout_lists, weighted=not args.plain, rule=args.rule,
        min_delta=args.min_gain, rounds=args.bootstrap_rounds,
        init=registry.find(args.init) if args.init else None, epochs=args.epochs,
    )
    texts = _item_texts(args, settings)
    print(f"{len(samples)} samples, {len(texts)} catalog items; champion {champion.name}",
          flush=True)
    outcome = finetune(samples, champion, settings.models_dir, plan,
                       item_text=lambda item_id: texts.get(item_id, ""),
                       progress=not args.quiet)
    if outcome.promoted and outcome.path is not None and not args.no_publish:
        update = update_for(outcome.path, outcome.update_metrics())
        asyncio.run(publish_update(KafkaClients(settings), settings.topics.models, update,
                                   settings.replication_factor))
        print(f"published ModelUpdate {update.version} on {settings.topics.models}")
    folder = write_report(args.report_dir, outcome, "streamrank " + shlex.join(sys.argv[1:]))
    for role in ("champion", "challenger"):
        figures = outcome.metrics.get(role, {})
        line = "  ".join(f"{k} {v['mean']:.4f} [{v['low']:.4f}, {v['high']:.4f}]"
                         for k, v in figures.items())
        if line:
            print(f"{role:>10}: {line}")
    verdict = f"promoted {outcome.challenger}" if outcome.promoted else "not promoted"
    print(f"{verdict}: {outcome.reason}\nreport: {folder / 'report.md'}")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.durations import format_duration
    from streams.learning.schedule import schedule

    if args.every is None:
        return train_once(args, settings)
    print(f"training every {format_duration(args.every)}; Ctrl-C stops", flush=True)
    try:
        schedule(args.every, lambda: train_once(args, settings))
    except KeyboardInterrupt:
        print("stopped")
    return 0


__all__ = ["add_parser", "champion_path", "run", "train_once"]
