"""`streamrank` command line: the single entry point that builds Settings."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from streams.cli import train as train_cli
from streams.settings import Settings

# Development data lives beside the clone, never in it.
DEFAULT_PRODUCTS = Path("../shared/data/retrotech/products.csv.gz")

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamrank", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="run a stream worker (configured by STREAMRANK_* variables)")

    kafka = sub.add_parser("kafka", help="a local single-node Kafka 3.9 broker (KRaft, no Docker)")
    kafka.add_argument("action", choices=["up", "down", "status"])
    kafka.add_argument("--port", type=int, default=9092)
    kafka.add_argument("--data-dir", type=Path, default=None)

    model = sub.add_parser("model", help="model registry (STREAMRANK_MODELS_DIR)")
    model.add_argument("action", choices=["export", "list", "rollback"])
    train_cli.register_rollback(model)
    model.add_argument(
        "--kind", choices=["zeroshot", "embed", "cross", "cascade"], default="zeroshot",
        help="export: zeroshot baseline, or a base (untrained-head) learned ranker",
    )
    model.add_argument("--cascade-k", type=int, default=10)

    demo = sub.add_parser("demo", help="broker + worker + simulated shoppers, then clean up")
    demo.add_argument("--users", type=int, default=12)
    demo.add_argument("--rounds", type=int, default=4)
    demo.add_argument("--port", type=int, default=9092)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench.add_argument("what", choices=["pipeline", "scorer"])
    bench.add_argument("--port", type=int, default=9092)
    bench.add_argument("--products", type=Path, default=DEFAULT_PRODUCTS)
    bench.add_argument("--items", type=int, default=3000)
    bench.add_argument("--users", type=int, default=200)
    bench.add_argument("--searches", type=int, default=1000)
    bench.add_argument("--candidates", type=int, default=50)
    bench.add_argument("--out", type=Path, default=None, help="write OUT.md and OUT.json")
    bench.add_argument("--kinds", default="embed,cross,cascade", help="scorer: model kinds")
    bench.add_argument("--backends", default="torch,fp32,int8", help="scorer: torch,fp32,int8,fp16")
    bench.add_argument("--batches", default="1,8,32", help="scorer: searches per call")
    bench.add_argument("--budget-s", type=float, default=4.0, help="scorer: seconds per config")
    bench.add_argument("--load-seconds", type=float, default=6.0)
    bench.add_argument("--slo-ms", type=float, default=50.0, help="scorer: p99 for capacity")
    bench.add_argument("--threads", type=int, default=None,
                       help="scorer: intra-op threads for torch and ONNX Runtime alike")
    bench.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")

    train_cli.register(sub)
    train_cli.register_simulate(sub)

    tail = sub.add_parser("tail", help="live view of recommendations (and deadletters)")
    tail.add_argument("--top", type=int, default=10, help="ranked items shown per result")
    tail.add_argument("--user", default=None, help="only this user's results")
    tail.add_argument("--no-deadletter", action="store_true", help="hide deadletter records")
    tail.add_argument("--from-beginning", action="store_true", help="replay the topics first")
    tail.add_argument("--lookback-s", type=float, default=600.0,
                      help="searches/actions read from this far back, for the join")
    tail.add_argument("--limit", type=int, default=None, help="stop after this many blocks")
    tail.add_argument("--idle-exit-s", type=float, default=None, help="stop when quiet this long")

    sub.add_parser("topics", help="check and create the topics (as a worker does at start)")

    docs = sub.add_parser("docs", help="regenerate docs/events.md and docs/configuration.md")
    docs.add_argument("--check", action="store_true", help="fail if the files are stale")

    from evaluation.cli import add_parser as add_eval_parser  # argparse only: cheap

    add_eval_parser(sub)

    schemas = sub.add_parser("schemas", help="write the JSON Schema files of the contracts")
    schemas.add_argument("--out", type=Path, default=Path("schemas"))
    schemas.add_argument("--check", action="store_true", help="fail if the files are stale")

    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    if args.command == "worker":
        return run_worker(settings)
    if args.command == "kafka":
        return kafka_command(args.action, args.port, args.data_dir)
    if args.command == "model" and args.action == "rollback":
        return train_cli.rollback_command(settings, args.version)
    if args.command == "train":
        return train_cli.run_train(args, settings)
    if args.command == "simulate":
        return train_cli.run_simulate(args, settings)
    if args.command == "model":
        return model_command(settings, args.action, args.kind, args.cascade_k)
    if args.command == "demo":
        from streams.tools.demo import run_demo

        return run_demo(settings, users=args.users, rounds=args.rounds, port=args.port)
    if args.command == "bench" and args.what == "scorer":
        from streams.tools import scorer_bench as scorer_bench  # torch: only on this path

        report = scorer_bench.run(
            settings.models_dir, kinds=args.kinds.split(","), backends=args.backends.split(","),
            batches=[int(b) for b in args.batches.split(",")], device=args.device,
            budget_s=args.budget_s, load_seconds=args.load_seconds, slo_ms=args.slo_ms,
            threads=args.threads,
            products=args.products,
            candidates=args.candidates,
        )
        print(scorer_bench.render(report))
        if args.out is not None:
            scorer_bench.write(report, args.out)
        return 0
    if args.command == "bench":
        from streams.tools.pipeline_bench import run_pipeline_bench

        return run_pipeline_bench(
            settings, port=args.port, products=args.products, items=args.items,
            users=args.users, searches=args.searches, candidates=args.candidates, out=args.out,
        )
    if args.command == "tail":
        from streams.tools.tail import run_tail

        return run_tail(settings, args)
    if args.command == "topics":
        from streams.kafka.topology import prepare_sync

        prepared = prepare_sync(settings)
        for role, name in prepared.topics.all().items():
            print(f"{role:<16} {name}")
        print(f"partitions {prepared.partitions}, catalog {prepared.catalog_partitions}")
        return 0
    if args.command == "docs":
        from streams.tools import reference_docs

        root = Path(__file__).resolve().parents[2]
        if args.check:
            stale_docs = reference_docs.stale(root)
            for path in stale_docs:
                print(f"stale: {path} (run `streamrank docs`)")
            return 1 if stale_docs else 0
        for path in reference_docs.write(root):
            print(path)
        return 0
    if args.command == "eval":
        from evaluation.cli import run as run_eval

        return run_eval(args, settings)
    if args.command == "schemas":
        from contracts.schemas import stale_schemas, write_schemas

        if args.check:
            stale = stale_schemas(args.out)
            for name in stale:
                print(f"stale: {name} (run `streamrank schemas`)")
            return 1 if stale else 0
        for path in write_schemas(args.out):
            print(path)
        return 0
    return 2


def model_command(settings: Settings, action: str, kind: str, cascade_k: int) -> int:
    if action == "list":
        from scoring import ModelRegistry

        for v in ModelRegistry(settings.models_dir).versions():
            print(f"{v.version:<32} {v.kind:<17} {','.join(v.variants):<15} {v.created} {v.path}")
        return 0
    # torch is imported on this path only
    if kind == "zeroshot":
        from scoring.training.export import ensure_encoder

        print(ensure_encoder(settings.models_dir))
    else:
        from scoring.training.export_ranker import ensure_base_ranker

        print(ensure_base_ranker(kind, settings.models_dir, cascade_k=cascade_k))  # type: ignore[arg-type]
    return 0


def run_worker(settings: Settings) -> int:
    import faust

    from scoring import build_scorer
    from scoring.serving import ScorerSlot
    from streams.kafka.topology import prepare_sync
    from streams.tools.model_setup import ensure_model
    from streams.worker.app import StreamrankApp

    log.info("settings: %s", settings.masked())
    ensure_model(settings)
    settings = prepare_sync(settings)
    options = {} if settings.cascade_k is None else {"cascade_k": settings.cascade_k}
    scorer = build_scorer(
        settings.scorer, settings.models_dir, device=settings.device,
        version=settings.model_version, variant=settings.model_variant, **options,
    )
    worker_app = StreamrankApp(settings, ScorerSlot(scorer))
    worker = faust.Worker(worker_app.app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()  # returns only via SystemExit
    return 0


def kafka_command(action: str, port: int, data_dir: Path | None) -> int:
    from streams.kafka.local_broker import LocalBroker

    broker = LocalBroker(port=port, data_dir=data_dir)
    if action == "up":
        broker.start()
        print(f"kafka up on {broker.bootstrap_servers} (log: {broker.status().log_file})")
    elif action == "down":
        broker.stop()
        print("kafka down")
    else:
        st = broker.status()
        state = f"running (pid {st.pid})" if st.running else "stopped"
        print(f"kafka {state} on {st.bootstrap}; data {st.data_dir}; log {st.log_file}")
        return 0 if st.running else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pragma: no cover
