"""The one reader of product files for benchmarks and tools: a Best Buy-style CSV (gzip or
plain) with `upc`, `name`, `manufacturer`, `short_description` columns, turned into catalog
Items.

Benchmarks score `Item.text()`, exactly the text the worker builds from the catalog, so what a
benchmark measures is what the worker would run (no separate truncation rules here).
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from pathlib import Path

from contracts import Item

# Kept in Item fields, not the model text: Item.text() decides what the model reads.
MAX_TITLE_CHARS = 300


def _open(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # closed by the caller


def read_products(path: Path) -> list[Item]:
    """Every product with a name, one per UPC (the file repeats some), in file order."""
    by_upc: dict[str, Item] = {}
    with _open(path) as fh:
        for row in csv.DictReader(fh):
            name = (row.get("name") or "").strip()
            upc = (row.get("upc") or "").strip()
            if not name or not upc:
                continue
            by_upc[upc] = Item(
                item_id=upc,
                title=name[:MAX_TITLE_CHARS],
                brand=(row.get("manufacturer") or "").strip() or None,
                description=(row.get("short_description") or "").strip() or None,
            )
    return list(by_upc.values())


def sample_products(path: Path, limit: int, seed: int = 1) -> list[Item]:
    """A seeded sample of at most `limit` products of the file."""
    items = read_products(path)
    return random.Random(seed).sample(items, min(limit, len(items)))


__all__ = ["MAX_TITLE_CHARS", "read_products", "sample_products"]
