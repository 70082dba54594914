"""`streamrank docs`: the reference documents generated from the code."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings

# The checkout this module belongs to (a development command: it writes the repository's docs).
ROOT = Path(__file__).resolve().parents[2]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "docs", help="regenerate the topic and settings reference (docs/*.md)",
        description="Write docs/events.md (topics and event fields) and docs/configuration.md "
                    "(every setting) from the code, so they cannot drift from it.",
    )
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a document is stale")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools import reference_docs

    if args.check:
        stale_docs = reference_docs.stale(ROOT)
        for path in stale_docs:
            print(f"stale: {path} (run `streamrank docs`)")
        return 1 if stale_docs else 0
    for path in reference_docs.write(ROOT):
        print(path)
    return 0
