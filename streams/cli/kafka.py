"""`streamrank kafka`: a local Kafka broker for development, without Docker."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings

DESCRIPTION = """\
A single-node Kafka 3.9 broker (KRaft mode) on this machine, for development: `up` starts it in
the background (downloading the jars from Maven Central once; needs Java 17), `down` stops it,
`status` says whether it runs (exit code 3 if not) and where its log is. Point workers at it
with STREAMRANK_BOOTSTRAP_SERVERS=127.0.0.1:PORT (the default for port 9092)."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("kafka", help="start, stop or check a local Kafka broker (no Docker)",
                       description=DESCRIPTION)
    p.add_argument("action", choices=["up", "down", "status"],
                   help="up: start in the background; down: stop; status: running or not")
    p.add_argument("--port", type=int, default=9092, help="the broker's client port")
    p.add_argument("--data-dir", type=Path, default=None, metavar="FOLDER",
                   help="log and data folder (default: ~/.local/state/streamrank/kafka-PORT, "
                        "under $XDG_STATE_HOME if set)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.local_broker import LocalBroker

    broker = LocalBroker(port=args.port, data_dir=args.data_dir)
    if args.action == "up":
        broker.start()
        print(f"kafka up on {broker.bootstrap_servers} (log: {broker.status().log_file})")
    elif args.action == "down":
        broker.stop()
        print("kafka down")
    else:
        st = broker.status()
        state = f"running (pid {st.pid})" if st.running else "stopped"
        print(f"kafka {state} on {st.bootstrap}; data {st.data_dir}; log {st.log_file}")
        return 0 if st.running else 3
    return 0
