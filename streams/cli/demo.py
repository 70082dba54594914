"""`streamrank demo`: everything on this machine, then cleaned up."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings

DESCRIPTION = """\
See streamrank work, on this machine alone: starts a throwaway Kafka broker (needs Java 17;
the jars come from Maven Central once) and a worker, lets simulated shoppers search and click
for a few rounds, prints their personalized rankings and the worker's metrics, then stops
everything and deletes what it created. Exports the zero-shot model first if it is missing."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="try it: local broker + worker + simulated shoppers",
                       description=DESCRIPTION)
    p.add_argument("--users", type=int, default=12, help="simulated shoppers")
    p.add_argument("--rounds", type=int, default=4, help="searches per shopper")
    p.add_argument("--port", type=int, default=9092, help="the throwaway broker's port")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.demo import run_demo

    return run_demo(settings, users=args.users, rounds=args.rounds, port=args.port)
