"""`streamrank bench pipeline | scorer`: benchmarks that print figures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoring.kinds import LEARNED_KINDS, ModelKind, kind_names
from streams.cli.options import duration, existing_path, names, positive_ints

if TYPE_CHECKING:
    from streams.settings import Settings

BACKENDS = ["torch", "fp32", "int8", "fp16"]

PIPELINE = """\
What a deployment lives with, through a real broker and one worker on this machine (a
throwaway Kafka broker, needs Java 17), on the model and product texts of `bench scorer`: the
scorer alone; catalog warm-up of --items products; sustained capacity through Kafka with the
learning loop on (open-loop steps at rising rates until p99 exceeds --slo or anything is
degraded) and where the time goes; a burst while --new-items warm; action ingest; POST /rank's
added latency; --overload at 3x capacity and the time to recover; the worker's memory
throughout. Prints markdown; --out also writes OUT.md and OUT.json (a top-level `capacity`
object for tools). Takes 10-20 minutes."""

SCORER = """\
Each model kind's scoring speed by backend, without Kafka: torch eager against ONNX Runtime
fp32, int8 and fp16 (CUDA), with the same weights and inputs (needs the train extra for
torch). A batch sweep (searches per call), then load through the micro-batcher, then the
highest rate served within the p99 target. Untrained base rankers are exported into the
registry if missing. Prints a table; --out also writes OUT.md and OUT.json."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks: the whole pipeline, or the scorers alone",
                       description="Benchmarks that print figures (docs/bench/ keeps results).")
    which = p.add_subparsers(dest="what", required=True, metavar="BENCHMARK")

    pipe = which.add_parser("pipeline", help="searches/s and latency through Kafka and a worker",
                            description=PIPELINE)
    pipe.add_argument("--products", type=existing_path, required=True, metavar="FILE",
                      help="product CSV(.gz) to build the catalog from")
    pipe.add_argument("--kind", choices=kind_names(), default=ModelKind.EMBED.value,
                      help="model kind the worker serves (its newest version, or "
                      "STREAMRANK_MODEL_VERSION)")
    pipe.add_argument("--port", type=int, default=0,
                      help="the throwaway broker's port (0: a free one)")
    pipe.add_argument("--items", type=int, default=3000, help="catalog size")
    pipe.add_argument("--new-items", type=int, default=3000,
                      help="items added (and warmed) during the burst")
    pipe.add_argument("--users", type=int, default=200, help="simulated users")
    pipe.add_argument("--candidates", type=int, default=50, help="candidates per search")
    pipe.add_argument("--slo", dest="slo_s", type=duration, default="50ms", metavar="DURATION",
                      help="p99 latency target that defines capacity")
    pipe.add_argument("--step", dest="step_s", type=duration, default="15s",
                      metavar="DURATION", help="length of each capacity step")
    pipe.add_argument("--burst", type=int, default=1000,
                      help="searches sent while the new items warm (at half capacity)")
    pipe.add_argument("--actions", type=int, default=30_000, help="actions in the ingest phase")
    pipe.add_argument("--overload", dest="overload_s", type=duration, default="60s",
                      metavar="DURATION", help="how long 3x capacity is offered")
    pipe.add_argument("--deadline", dest="deadline_s", type=duration, default="200ms",
                      metavar="DURATION", help="the worker's search deadline "
                      "(STREAMRANK_SEARCH_DEADLINE_MS)")
    pipe.add_argument("--max-age", dest="max_age_s", type=duration, default="300ms",
                      metavar="DURATION", help="the worker's age limit "
                      "(STREAMRANK_SEARCH_MAX_AGE_MS)")
    pipe.add_argument("--out", type=Path, default=None, metavar="PREFIX",
                      help="also write PREFIX.md and PREFIX.json")

    scorer = which.add_parser("scorer", help="torch vs ONNX Runtime fp32/int8/fp16 per model",
                              description=SCORER)
    scorer.add_argument("--products", type=existing_path, default=None, metavar="FILE",
                        help="product CSV(.gz) whose texts are scored (default: synthetic texts)")
    scorer.add_argument("--kinds", type=names(kind_names(LEARNED_KINDS)),
                        default=",".join(kind_names(LEARNED_KINDS)), help="model kinds, comma "
                        "separated")
    scorer.add_argument("--backends", type=names(BACKENDS), default="torch,fp32,int8",
                        help=f"comma separated, of {','.join(BACKENDS)} (fp16: CUDA only)")
    scorer.add_argument("--batches", type=positive_ints, default="1,8,32",
                        help="searches per call in the sweep, comma separated")
    scorer.add_argument("--candidates", type=int, default=50, help="candidates per search")
    scorer.add_argument("--budget", dest="budget_s", type=duration, default="4s",
                        metavar="DURATION", help="time per backend and batch size in the sweep")
    scorer.add_argument("--load", dest="load_s", type=duration, default="6s", metavar="DURATION",
                        help="length of each load phase through the micro-batcher")
    scorer.add_argument("--slo", dest="slo_s", type=duration, default="50ms", metavar="DURATION",
                        help="p99 latency target that defines capacity")
    scorer.add_argument("--threads", type=int, default=None,
                        help="intra-op threads for torch and ONNX Runtime alike (default: "
                             "torch's own count)")
    scorer.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="where torch and ONNX Runtime run")
    scorer.add_argument("--out", type=Path, default=None, metavar="PREFIX",
                        help="also write PREFIX.md and PREFIX.json")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.what == "scorer":
        return _scorer(args, settings)
    from streams.kafka.broker_config import free_port
    from streams.tools.pipeline_bench import Options, run_pipeline_bench

    return run_pipeline_bench(settings, Options(
        products=args.products, kind=ModelKind(args.kind), port=args.port or free_port(),
        items=args.items, new_items=args.new_items, users=args.users,
        candidates=args.candidates, slo_ms=args.slo_s * 1000, step_s=args.step_s,
        burst=args.burst, actions=args.actions, overload_s=args.overload_s,
        deadline_ms=args.deadline_s * 1000, max_age_ms=args.max_age_s * 1000, out=args.out,
    ))


def _scorer(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools import scorer_bench  # torch: only on this path

    report = scorer_bench.run(
        settings.models_dir, kinds=args.kinds, backends=args.backends, batches=args.batches,
        device=args.device, budget_s=args.budget_s, load_seconds=args.load_s,
        slo_ms=round(args.slo_s * 1000, 6), threads=args.threads, products=args.products,
        candidates=args.candidates,
    )
    print(scorer_bench.render(report))
    if args.out is not None:
        scorer_bench.write(report, args.out)
    return 0
