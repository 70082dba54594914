"""`streamrank schemas`: JSON Schema files of the events, for producers in other languages."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "schemas", help="write the events' JSON Schema files",
        description="Write one JSON Schema file per event type (searches, actions, catalog "
                    "items, results, samples, model updates), for producers and consumers "
                    "written in other languages.",
    )
    p.add_argument("--out", type=Path, default=Path("schemas"), metavar="FOLDER",
                   help="folder to write")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a file is stale")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from contracts.schemas import stale_schemas, write_schemas

    if args.check:
        stale = stale_schemas(args.out)
        for name in stale:
            print(f"stale: {name} (run `streamrank schemas`)")
        return 1 if stale else 0
    for path in write_schemas(args.out):
        print(path)
    return 0
