"""`streamrank train` and `streamrank model rollback`: flags, and one run from samples to rollout.

A run: read samples (the samples topic, or a JSONL file) → find the champion (the model the
last ModelUpdate announced, else the worker's configured one) → scoring.training.finetune →
publish a ModelUpdate if the challenger was promoted and installed → write the report.
Imports stay inside the functions: building the CLI parser must not load onnxruntime, Kafka
clients or torch (torch only once a training run starts).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.settings import Settings

if TYPE_CHECKING:
    from scoring import ModelRegistry

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add the `train` sub-command to the CLI's sub-parsers."""
    p = sub.add_parser(
        "train", help="fine-tune a challenger on captured samples; promote it if it wins",
        description="docs/training.md: data, promotion rule, report, schedule, rollback",
    )
    src = p.add_argument_group("samples (default: the whole samples topic)")
    src.add_argument("--samples", type=Path, help="a JSONL file of TrainingSamples instead")
    src.add_argument("--since", help="from this time: epoch ms, ISO 8601, or a duration ago (24h)")
    src.add_argument("--until", help="up to this time (same forms)")
    src.add_argument("--from-offset", type=int, help="from this offset in every partition")
    src.add_argument("--save-samples", type=Path, help="also write the samples read to JSONL")
    p.add_argument("--champion", help="version to beat (default: the current ModelUpdate, "
                   "else STREAMRANK_SCORER / STREAMRANK_MODEL_VERSION)")
    p.add_argument("--init", help="start from this version instead of the champion/base")
    p.add_argument("--kind", choices=["embed", "cross"], default="embed")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lists-per-step", type=int, default=16)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--train-encoder", action="store_true", help="embed: tune the encoder too")
    p.add_argument("--holdout", type=float, default=0.2, help="most recent share held out")
    p.add_argument("--min-train-lists", type=int, default=20)
    p.add_argument("--min-holdout-lists", type=int, default=10)
    p.add_argument("--rule", choices=["significant", "always"], default="significant",
                   help="significant: the paired 95%% interval of the NDCG@10 gain lies above "
                   "--min-gain; always: promote whatever the figures (they are still reported)")
    p.add_argument("--min-gain", type=float, default=0.0)
    p.add_argument("--plain", action="store_true",
                   help="decide on plain NDCG@10 instead of the position-aware (IPS) one")
    p.add_argument("--bootstrap-rounds", type=int, default=1000)
    p.add_argument("--no-publish", action="store_true", help="install, but publish no update")
    p.add_argument("--report-dir", type=Path, default=Path("var/training"))
    p.add_argument("--every", help="run again every DURATION (30m, 6h, 1d) until stopped")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register_simulate(sub: Any) -> None:
    p = sub.add_parser(
        "simulate", help="simulated shoppers with stable preferences against running workers",
        description="streams/tools/traffic.py; STREAMRANK_* variables configure the deployment",
    )
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--prefix", default="sim", help="user ids are PREFIX-N")
    p.add_argument("--settle-s", type=float, default=1.0, help="pause after each round")
    p.add_argument("--wait-samples", type=float, default=0.0, metavar="SECONDS",
                   help="then wait up to this long for every search's samples")


def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.traffic import drive, wait_for_samples

    def show(rnd: int, traffic: Any) -> None:
        print(f"round {rnd}: {len(traffic.results)} results so far", flush=True)

    traffic = asyncio.run(drive(
        settings.bootstrap_servers, settings.topics, users=args.users, rounds=args.rounds,
        seed=args.seed, prefix=args.prefix, settle_s=args.settle_s, on_round=show,
    ))
    print(traffic.summary())
    if args.wait_samples > 0:
        samples = asyncio.run(wait_for_samples(
            settings.bootstrap_servers, settings.topics.samples, set(traffic.searches),
            timeout_s=args.wait_samples,
        ))
        print(f"{len(samples)} samples captured for {len(traffic.searches)} searches")
    return 0


def register_rollback(model_parser: argparse.ArgumentParser) -> None:
    model_parser.add_argument(
        "version", nargs="?", help="rollback: the registry version to serve again"
    )


def champion_path(settings: Settings, registry: ModelRegistry, wanted: str | None) -> Path:
    """The version to beat: `wanted`, else what the models topic says workers serve, else
    what a worker would start with."""
    from scoring import ZEROSHOT_MODEL, ModelError
    from streams.learning.rollout import current_update

    if wanted:
        return registry.find(wanted)
    update = asyncio.run(current_update(settings.bootstrap_servers, settings.topics.models))
    if update is not None:
        uri = Path(update.uri)
        return uri if uri.is_dir() else registry.find(update.version)
    if settings.model_version:
        return registry.resolve(settings.model_version)
    if settings.scorer == "zeroshot":
        return settings.models_dir / ZEROSHOT_MODEL
    latest = registry.latest(settings.scorer)
    if latest is None:
        raise ModelError(f"no {settings.scorer} model in {settings.models_dir} to compare with")
    return latest


def _samples(args: argparse.Namespace, settings: Settings) -> list[Any]:
    from scoring.training.samples import read_samples_file, write_samples_file
    from streams.durations import parse_time
    from streams.learning.samples_reader import read_samples

    if args.samples is not None:
        samples = read_samples_file(args.samples)
    else:
        samples = asyncio.run(read_samples(
            settings.bootstrap_servers, settings.topics.samples,
            since_ms=parse_time(args.since) if args.since else None,
            until_ms=parse_time(args.until) if args.until else None,
            from_offset=args.from_offset, progress=not args.quiet,
        ))
    if args.save_samples is not None:
        write_samples_file(args.save_samples, samples)
    return samples


def train_once(args: argparse.Namespace, settings: Settings) -> int:
    """One run; 0 whether or not the challenger was promoted (the report says which)."""
    from scoring import ModelRegistry
    from scoring.training.finetune import Plan, finetune
    from scoring.training.report import write_report
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
        init=registry.find(args.init) if args.init else None,
    )
    print(f"{len(samples)} samples; champion {champion.name}", flush=True)
    outcome = finetune(samples, champion, settings.models_dir, plan, progress=not args.quiet)
    if outcome.promoted and outcome.path is not None and not args.no_publish:
        update = update_for(outcome.path, outcome.update_metrics())
        asyncio.run(publish_update(settings.bootstrap_servers, settings.topics.models, update,
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


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    from streams.durations import parse_duration
    from streams.learning.schedule import schedule

    if args.every is None:
        return train_once(args, settings)
    every = parse_duration(args.every)
    print(f"training every {args.every}; Ctrl-C stops", flush=True)
    try:
        schedule(every, lambda: train_once(args, settings))
    except KeyboardInterrupt:
        print("stopped")
    return 0


def rollback_command(settings: Settings, version: str | None) -> int:
    if not version:
        print("model rollback needs a VERSION (see `streamrank model list`)", file=sys.stderr)
        return 2
    from streams.learning.rollout import rollback

    update = asyncio.run(rollback(settings.bootstrap_servers, settings.topics.models,
                                  settings.models_dir, version, settings.replication_factor))
    print(f"published ModelUpdate {update.version} ({update.uri}) on {settings.topics.models}")
    return 0


__all__ = ["champion_path", "register", "register_rollback", "register_simulate",
           "rollback_command", "run_simulate", "run_train", "train_once"]
