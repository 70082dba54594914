"""The product catalog: item text for the scorer, readable by item_id."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from contracts import Item, decode, encode
from state.kv import KeyValue


class CatalogStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    def upsert(self, item: Item) -> None:
        if item.deleted:
            self.delete(item.item_id)
        else:
            self._kv[item.item_id] = encode(item)

    def delete(self, item_id: str) -> None:
        self._kv.pop(item_id, None)

    def get(self, item_id: str) -> Item | None:
        raw = self._kv.get(item_id)
        return None if raw is None else decode(raw, Item)

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
