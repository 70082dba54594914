"""Stable small numbers derived from ids: item hashes, event hashes, action codes, attribute
buckets. Defined once here because both `state` (which stores them) and `scoring` (which looks
them up) need the same numbers, and those two layers may not import each other.

API:
    item_hash(item_id) -> int            signed 64-bit blake2b of the id (never Python's hash():
                                         that one is salted per process)
    item_hashes(item_ids) -> list[int]
    event_hash(event_id) -> int          signed 64-bit, for the dedup ring of replayed actions
    ACTIONS                              the action types in increasing strength
    ACTION_CODES[action] -> int          1 view, 2 click, 3 add_to_cart, 4 purchase (0 = none)
    item_attributes(item) -> Attributes  what the behaviour features read of a catalog Item
    attribute_keys(attributes)           "field=value" strings of an item's attributes
    attribute_mask(attributes, buckets)  bitmask (a Python int) of the buckets those keys hash to

Attributes are what the catalog gives for an item, e.g. {"category": "Shoes", "brand": "Acme"}
or {"genres": ["Comedy", "Drama"], "decade": "1990s"}: a string or a sequence of strings per
field (None or empty: absent). Values are compared case-insensitively and stripped.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import get_args

from contracts.events import Action, Item

# Increasing strength: the order of the Action literal (view < click < cart < purchase).
ACTIONS: tuple[str, ...] = tuple(get_args(Action))
ACTION_CODES: dict[str, int] = {action: code for code, action in enumerate(ACTIONS, start=1)}
NO_ACTION = 0

# What an item's attribute field may hold.
AttributeValue = str | Sequence[str] | None
Attributes = Mapping[str, AttributeValue]


def _hash64(text: str, salt: bytes) -> int:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, person=salt).digest()
    return int.from_bytes(digest, "little", signed=True)


@functools.lru_cache(maxsize=1 << 18)  # ids repeat across searches; hashing dominates lookups
def item_hash(item_id: str) -> int:
    """The item's 64-bit id: the key of user interaction columns and model neighbour lists."""
    return _hash64(item_id, b"streamrank-item")


def item_hashes(item_ids: Iterable[str]) -> list[int]:
    return [item_hash(i) for i in item_ids]


def event_hash(event_id: str) -> int:
    """64-bit id of an event, to recognise an action delivered twice."""
    return _hash64(event_id, b"streamrank-evnt")


# A category path or list: "Shoes > Running", "Action, Comedy", "Action|Comedy".
_CATEGORY_SPLIT = re.compile(r"\s*[,|>/]\s*")


def item_attributes(item: Item) -> dict[str, AttributeValue]:
    """The catalog attributes the behaviour features use: the category split into its values
    (",", "|", ">" or "/" separate them) and the brand. The worker and the evaluation both
    derive attributes from an Item with this, so they hash the same keys."""
    categories = [c for c in _CATEGORY_SPLIT.split(item.category or "") if c]
    return {"category": categories, "brand": item.brand}


def attribute_keys(attributes: Attributes | None) -> list[str]:
    """Sorted, de-duplicated "field=value" keys (lower-cased, stripped) of the attributes."""
    if not attributes:
        return []
    keys: set[str] = set()
    for field, value in attributes.items():
        values = [value] if isinstance(value, str) else list(value or ())
        for v in values:
            text = str(v).strip().lower()
            if text:
                keys.add(f"{field.strip().lower()}={text}")
    return sorted(keys)


@functools.lru_cache(maxsize=1 << 16)
def attribute_bucket(key: str, buckets: int) -> int:
    return _hash64(key, b"streamrank-attr") % buckets


def attribute_mask(attributes: Attributes | None, buckets: int) -> int:
    """Bit b set when one of the item's attribute keys hashes to bucket b (0 <= b < buckets)."""
    if buckets < 1:
        raise ValueError("buckets must be >= 1")
    if not attributes:
        return 0
    try:  # the same attributes recur across searches: a cache keyed by their frozen form
        frozen = tuple((k, v if v is None or isinstance(v, str) else tuple(v))
                       for k, v in attributes.items())
        return _mask(frozen, buckets)
    except TypeError:  # an unhashable value: compute it directly
        return _mask_of(attribute_keys(attributes), buckets)


@functools.lru_cache(maxsize=1 << 16)
def _mask(frozen: tuple[tuple[str, str | tuple[str, ...] | None], ...], buckets: int) -> int:
    return _mask_of(attribute_keys(dict(frozen)), buckets)


def _mask_of(keys: Iterable[str], buckets: int) -> int:
    mask = 0
    for key in keys:
        mask |= 1 << attribute_bucket(key, buckets)
    return mask


__all__ = [
    "ACTIONS",
    "ACTION_CODES",
    "NO_ACTION",
    "AttributeValue",
    "Attributes",
    "attribute_bucket",
    "attribute_keys",
    "attribute_mask",
    "event_hash",
    "item_attributes",
    "item_hash",
    "item_hashes",
]
