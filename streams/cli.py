"""`streamrank` command line: the single entry point that builds Settings."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

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

    model = sub.add_parser("model", help="model registry")
    model.add_argument("action", choices=["export"])

    demo = sub.add_parser("demo", help="broker + worker + simulated shoppers, then clean up")
    demo.add_argument("--users", type=int, default=12)
    demo.add_argument("--rounds", type=int, default=4)
    demo.add_argument("--port", type=int, default=9092)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench.add_argument("what", choices=["pipeline"])
    bench.add_argument("--port", type=int, default=9092)
    bench.add_argument("--products", type=Path, default=DEFAULT_PRODUCTS)
    bench.add_argument("--items", type=int, default=3000)
    bench.add_argument("--users", type=int, default=200)
    bench.add_argument("--searches", type=int, default=1000)
    bench.add_argument("--candidates", type=int, default=50)
    bench.add_argument("--out", type=Path, default=None, help="write OUT.md and OUT.json")

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
    if args.command == "model":
        from scoring.training.export import ensure_encoder  # torch: only on this path

        print(ensure_encoder(settings.models_dir))
        return 0
    if args.command == "demo":
        from streams.demo import run_demo

        return run_demo(settings, users=args.users, rounds=args.rounds, port=args.port)
    if args.command == "bench":
        from streams.bench import run_pipeline_bench

        return run_pipeline_bench(
            settings, port=args.port, products=args.products, items=args.items,
            users=args.users, searches=args.searches, candidates=args.candidates, out=args.out,
        )
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


def ensure_model(settings: Settings) -> None:
    """Export the zero-shot model if the registry lacks it, in a child process so that the
    worker itself never imports torch."""
    from scoring import ModelError, build_scorer

    try:
        build_scorer(settings.scorer, settings.models_dir, device="cpu")
    except ModelError:
        log.info("model missing in %s: exporting it (once)", settings.models_dir)
        subprocess.run([sys.executable, "-m", "streams.cli", "model", "export"], check=True)


def run_worker(settings: Settings) -> int:
    import faust

    from scoring import build_scorer
    from streams.app import StreamrankApp
    from streams.topology import prepare_sync

    ensure_model(settings)
    settings = prepare_sync(settings)
    scorer = build_scorer(settings.scorer, settings.models_dir, device=settings.device)
    log.info("scorer %s version %s on %s", scorer.name, scorer.version, scorer.provider)
    worker_app = StreamrankApp(settings, scorer)
    worker = faust.Worker(worker_app.app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()  # returns only via SystemExit
    return 0


def kafka_command(action: str, port: int, data_dir: Path | None) -> int:
    from streams.broker import LocalBroker

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
    sys.exit(main())
