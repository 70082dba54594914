#!/usr/bin/env python3
"""`make lint`: no module of the shipped packages (or the tests) over MAX_LINES lines.

One concept per module keeps a module readable in one sitting; past this size it is doing
several things and should be split (docs/architecture.md). Usage:
    python scripts/module_size.py [--max N] [ROOT ...]   (default: the packages and tests/)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MAX_LINES = 400
DEFAULT_ROOTS = ("contracts", "state", "scoring", "streams", "evaluation", "tests")


def oversized(roots: list[Path], max_lines: int) -> list[tuple[Path, int]]:
    """(module, line count) of every .py file under `roots` longer than `max_lines`."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > max_lines:
                found.append((path, lines))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path)
    parser.add_argument("--max", type=int, default=MAX_LINES, help="lines per module")
    args = parser.parse_args(argv)
    roots = args.roots or [Path(r) for r in DEFAULT_ROOTS]
    found = oversized(roots, args.max)
    for path, lines in found:
        print(f"{path}: {lines} lines (max {args.max}): split it by concept")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
