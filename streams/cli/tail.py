"""`streamrank tail`: watch the rankings as people receive them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from streams.cli.options import duration

if TYPE_CHECKING:
    from streams.settings import Settings

DESCRIPTION = """\
A readable live view of what the workers publish: for each ranked search its query, the
user's last actions and the ranked items with their scores and titles; deadletters (messages
a worker could not use) with their reason and origin. Reads without a consumer group, so it
never disturbs the workers. Ctrl-C stops it."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tail", help="watch the rankings (and deadletters) live",
                       description=DESCRIPTION)
    p.add_argument("--top", type=int, default=10, help="ranked items shown per search")
    p.add_argument("--user", default=None, metavar="USER_ID", help="only this user's rankings")
    p.add_argument("--no-deadletter", action="store_true", help="hide deadletters")
    p.add_argument("--from-beginning", action="store_true",
                   help="start from the oldest retained rankings instead of new ones")
    p.add_argument("--lookback", dest="lookback_s", type=duration, default="10m",
                   metavar="DURATION",
                   help="searches and actions read from this far back to show beside rankings")
    p.add_argument("--limit", type=int, default=None, help="stop after this many rankings")
    p.add_argument("--idle-exit", dest="idle_exit_s", type=duration, default=None,
                   metavar="DURATION", help="stop when nothing arrived for this long")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.tail import run_tail

    return run_tail(settings, args)
