"""`streamrank eval movielens`: the command, registered by name in streams/cli (COMMANDS).

Only argparse at import time: building the parser must stay cheap for every other command.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from scoring.kinds import LEARNED_KINDS, kind_names
from streams.cli.options import existing_path, names

log = logging.getLogger(__name__)

# The behaviour-aware hybrid (with LightGBM over the same features); the older text-only
# kinds (embed, cross, cascade: half an hour more on a 2-core CPU) only when named.
DEFAULT_KINDS = "hybrid"
DEFAULT_OUT = Path("docs/eval/movielens")
# The evaluation's trained versions: kept out of the serving registry, so a worker's
# "newest embed" is never an evaluation model by accident.
DEFAULT_MODELS = Path("var/eval/models")


DESCRIPTION = """\
How much does the behaviour-aware ranker improve ranking, on real users' behaviour?
MovieLens ratings are replayed in time order as searches (a tag or genre query, the user's
earlier films as history, 50 candidates) followed by the user's choice, and as actions into
the worker's own behaviour state. Rule baselines, the zero-shot model, LightGBM LambdaMART and
the hybrid ranker (trained here on the earlier searches, 3 seeds, ablations) rank the same
searches; the report gives NDCG@10, MRR and recall with user-resampled paired intervals, and
plots. --kafka also replays a sample through a real broker and worker. Needs the train and
eval extras. docs/evaluation.md explains the protocol and the budget. MovieLens:
https://grouplens.org/datasets/movielens/ (ml-latest-small is enough)."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="measure the rankers on real behaviour (MovieLens)",
                       description=DESCRIPTION)
    p.add_argument("dataset", choices=["movielens"], help="the data set's layout")
    p.add_argument("--data", type=existing_path, required=True, metavar="FOLDER",
                   help="a MovieLens folder: ml-latest(-small) CSVs or ml-100k u.data/u.item")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="PREFIX",
                   help="report prefix: PREFIX.md, PREFIX.json, PREFIX-*.png")
    p.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS, metavar="FOLDER",
                   help="where trained evaluation models go")
    p.add_argument("--limit", type=int, default=None,
                   help="score at most this many test searches (seeded sample; for development)")
    p.add_argument("--cross-searches", type=int, default=100,
                   help="test searches the cross-encoder systems score (seeded sample)")
    p.add_argument("--kinds", type=names(kind_names(LEARNED_KINDS), allow_empty=True),
                   default=DEFAULT_KINDS,
                   help="learned kinds to train and compare, comma separated ('' for none; "
                        "embed, cross and cascade are the older text-only rankers)")
    p.add_argument("--seeds", type=int, default=3, help="hybrid training seeds")
    p.add_argument("--epochs", type=int, default=8, help="hybrid epochs at most (early stopping)")
    p.add_argument("--finetune-steps", type=int, default=60,
                   help="hybrid: steps of top-layer encoder fine-tuning per seed (0: frozen)")
    p.add_argument("--gbdt-seeds", type=int, default=1, help="LightGBM LambdaMART seeds")
    p.add_argument("--no-ablations", action="store_true",
                   help="skip the hybrid's ablations (without text, features, history)")
    p.add_argument("--no-zeroshot", action="store_true", help="skip the zero-shot baselines")
    p.add_argument("--retained", type=int, default=1000,
                   help="items kept per user in the retained interaction set")
    p.add_argument("--threads", type=int, default=2, help="torch and LightGBM threads")
    p.add_argument("--k", type=int, default=50, help="candidates per search")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="share of the timeline, the most recent, scored as test searches")
    p.add_argument("--train-searches", type=int, default=None,
                   help="the most recent training-period searches the rankers learn from "
                        "(default: all)")
    p.add_argument("--no-decade", action="store_true", help="genre queries without the decade")
    p.add_argument("--popularity-weight", type=float, default=0.5,
                   help="weight of popularity in the first-stage retriever of candidates")
    p.add_argument("--embed-steps", type=int, default=None,
                   help="training steps of the embed ranker (default: the stated budget, "
                        "docs/evaluation.md)")
    p.add_argument("--cross-steps", type=int, default=None,
                   help="training steps of the cross-encoder (default: the stated budget)")
    p.add_argument("--seed", type=int, default=0, help="seed of every sample and training run")
    p.add_argument("--fresh", action="store_true",
                   help="train again even where identical inputs were trained before")
    p.add_argument("--kafka", action="store_true",
                   help="also replay a sample through a local broker and a worker")
    p.add_argument("--kafka-searches", type=int, default=600,
                   help="--kafka: test searches replayed through the broker")
    p.add_argument("--kafka-rate", type=float, default=None, help="searches/s (default: no cap)")
    p.add_argument("--port", type=int, default=None,
                   help="--kafka: use the broker running on this local port (default: start a "
                        "throwaway one on a free port)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def command_line(args: argparse.Namespace) -> str:
    """The command as a user would retype it (defaults left out)."""
    parts = ["streamrank", "eval", args.dataset, "--data", str(args.data)]
    defaults = {"out": DEFAULT_OUT, "models_dir": DEFAULT_MODELS, "limit": None,
                "cross_searches": 100, "kinds": DEFAULT_KINDS.split(","), "k": 50,
                "test_fraction": 0.1, "train_searches": None, "no_decade": False,
                "seeds": 3, "epochs": 8, "finetune_steps": 60, "gbdt_seeds": 1,
                "no_ablations": False, "no_zeroshot": False, "retained": 1000, "threads": 2,
                "popularity_weight": 0.5, "embed_steps": None, "cross_steps": None, "seed": 0,
                "fresh": False, "kafka": False, "kafka_searches": 600, "kafka_rate": None,
                "port": None, "quiet": False}
    for name, default in defaults.items():
        value = getattr(args, name)
        if value == default:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, list):
            value = ",".join(value)
        parts += [flag] if isinstance(value, bool) else [flag, str(value)]
    return " ".join(parts)


def run(args: argparse.Namespace, settings: Any) -> int:
    from dataclasses import replace

    from evaluation.hybrid_runs import HybridBudget
    from evaluation.learned import Budget
    from evaluation.protocol import ProtocolConfig
    from evaluation.run import EvalConfig, run_movielens
    from scoring.behaviour_spec import BehaviourSpec

    kinds = tuple(args.kinds)
    budget = Budget(seed=args.seed)
    if args.embed_steps is not None:
        budget = replace(budget, embed_steps=args.embed_steps)
    if args.cross_steps is not None:
        budget = replace(budget, cross_steps=args.cross_steps)
    config = EvalConfig(
        data=args.data, out=args.out, models_dir=args.models_dir,
        zeroshot_dir=settings.models_dir,
        protocol=ProtocolConfig(
            k=args.k, test_fraction=args.test_fraction, train_searches=args.train_searches,
            decade=not args.no_decade, popularity_weight=args.popularity_weight, seed=args.seed,
            history=settings.history_length,
        ),
        budget=budget, limit=args.limit, cross_searches=args.cross_searches,
        hybrid=HybridBudget(seeds=args.seeds, epochs=args.epochs,
                            finetune_steps=args.finetune_steps, gbdt_seeds=args.gbdt_seeds,
                            ablations=not args.no_ablations, threads=args.threads),
        spec=BehaviourSpec(retained=args.retained), zeroshot=not args.no_zeroshot,
        kinds=kinds, fresh=args.fresh,
        kafka=args.kafka, kafka_searches=args.kafka_searches, kafka_rate=args.kafka_rate,
        kafka_port=args.port, command=command_line(args), progress=not args.quiet,
    )
    _ensure_zeroshot(settings.models_dir)
    run_movielens(config)
    return 0


def _ensure_zeroshot(models_dir: Path) -> None:
    from scoring import ZEROSHOT_MODEL
    from scoring.base import MANIFEST_FILE

    if not (Path(models_dir) / ZEROSHOT_MODEL / MANIFEST_FILE).is_file():
        from scoring.training.export import ensure_encoder

        log.info("exporting the zero-shot model into %s (once)", models_dir)
        ensure_encoder(Path(models_dir))


__all__ = ["add_parser", "command_line", "run"]
