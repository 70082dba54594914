"""`streamrank simulate`: simulated shoppers against running workers."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from streams.cli.options import duration, duration_or_zero

if TYPE_CHECKING:
    from streams.settings import Settings

DESCRIPTION = """\
Simulated shoppers with stable tastes search, click and buy against the workers already
running (STREAMRANK_BOOTSTRAP_SERVERS): traffic for the learning loop, whose samples
`streamrank train` then learns from (docs/training.md). Prints a summary per round."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("simulate", help="simulated shoppers against running workers",
                       description=DESCRIPTION)
    p.add_argument("--users", type=int, default=100, help="simulated shoppers")
    p.add_argument("--rounds", type=int, default=10, help="searches per shopper")
    p.add_argument("--seed", type=int, default=7, help="seed of their tastes and choices")
    p.add_argument("--prefix", default="sim", help="user ids are PREFIX-N")
    p.add_argument("--settle", dest="settle_s", type=duration_or_zero, default="1s",
                   metavar="DURATION", help="pause after each round, for clicks to arrive")
    p.add_argument("--wait-samples", type=duration, default=None, metavar="DURATION",
                   help="then wait up to this long for every search's training samples "
                        "(they close after STREAMRANK_ATTRIBUTION_WINDOW_S)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.connection import KafkaClients
    from streams.tools.traffic import drive, wait_for_samples

    def show(rnd: int, traffic: Any) -> None:
        print(f"round {rnd}: {len(traffic.results)} results so far", flush=True)

    clients = KafkaClients(settings)
    traffic = asyncio.run(drive(
        clients, settings.topics, users=args.users, rounds=args.rounds,
        seed=args.seed, prefix=args.prefix, settle_s=args.settle_s, on_round=show,
    ))
    print(traffic.summary())
    if args.wait_samples is not None:
        samples = asyncio.run(wait_for_samples(
            clients, settings.topics.samples, set(traffic.searches),
            timeout_s=args.wait_samples,
        ))
        print(f"{len(samples)} samples captured for {len(traffic.searches)} searches")
    return 0
