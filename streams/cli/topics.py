"""`streamrank topics`: check and create the topics, as a worker does when it starts."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings

DESCRIPTION = """\
Check that streamrank's topics exist with usable partition counts and create the missing ones,
as a worker does when it starts; then print each topic's name. Run it once before starting
several workers so they never race to create topics (docker-compose.yml does). Topic names
start with STREAMRANK_TOPIC_PREFIX; new topics get STREAMRANK_PARTITIONS partitions."""


def add_parser(sub: Any) -> None:
    sub.add_parser("topics", help="check and create the Kafka topics (as a worker does)",
                   description=DESCRIPTION)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.topology import prepare_sync

    prepared = prepare_sync(settings)
    for role, name in prepared.topics.all().items():
        print(f"{role:<16} {name}")
    print(f"partitions {prepared.partitions}, catalog {prepared.catalog_partitions}")
    return 0
