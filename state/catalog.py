"""The product catalog: item text for the scorer, readable by item_id.

Reads are hot (every search reads its 50 or so candidates) and decoding a stored Item through
its pydantic model costs ~15 µs, so the most recently read items are kept decoded in a bounded
LRU cache; an upsert or delete of an item drops its cached copy. The cache is guarded by a lock
because a model swap walks the catalog from its own thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from contracts import Item, decode, encode
from state.kv import KeyValue

DEFAULT_CACHED_ITEMS = 20_000  # ~30 MB of decoded items at typical product text sizes


class CatalogStore:
    def __init__(self, kv: KeyValue, *, cached_items: int = DEFAULT_CACHED_ITEMS) -> None:
        self._kv = kv
        self._cached_items = cached_items
        self._cache: OrderedDict[str, Item] = OrderedDict()
        self._lock = threading.Lock()

    def upsert(self, item: Item) -> None:
        if item.deleted:
            self.delete(item.item_id)
            return
        with self._lock:
            self._kv[item.item_id] = encode(item)
            self._cache.pop(item.item_id, None)

    def delete(self, item_id: str) -> None:
        with self._lock:
            self._kv.pop(item_id, None)
            self._cache.pop(item_id, None)

    def get(self, item_id: str) -> Item | None:
        with self._lock:
            item = self._cache.get(item_id)
            if item is not None:
                self._cache.move_to_end(item_id)
                return item
            raw = self._kv.get(item_id)
        if raw is None:
            return None
        item = decode(raw, Item)
        if self._cached_items > 0:
            with self._lock:
                # Not cached if it changed meanwhile: the store, not this copy, is the truth.
                if self._kv.get(item_id) == raw:
                    self._cache[item_id] = item
                    if len(self._cache) > self._cached_items:
                        self._cache.popitem(last=False)
        return item

    def text(self, item_id: str) -> str:
        """The item's model text; "" for an item the catalog does not know (yet)."""
        item = self.get(item_id)
        return "" if item is None else item.text()

    def texts(self, item_ids: Iterable[str]) -> list[str]:
        return [self.text(i) for i in item_ids]

    def ids(self) -> Iterator[str]:
        return iter(self._kv)

    def __len__(self) -> int:
        return len(self._kv)
