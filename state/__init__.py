"""Per-user behaviour, impressions and the catalog, over any string→bytes key-value store.

The same logic runs over a plain dict (tests, tools), a rocksdict database (standalone use)
and a Faust table (the worker, where the table's changelog makes it survive a crash).
"""

from state.catalog import CatalogStore
from state.due import Due, DueWheel
from state.impressions import Closing, Impression, ImpressionStore, UserIndex
from state.interactions import InteractionStore, UserColumns
from state.item_stats import ItemStatsLayout, ItemStatsReading
from state.kv import KeyValue, MemoryKV, RocksKV
from state.sequence import SequenceEntry, SequenceStore, UserSequence

__all__ = [
    "CatalogStore",
    "Closing",
    "Due",
    "DueWheel",
    "Impression",
    "ImpressionStore",
    "InteractionStore",
    "ItemStatsLayout",
    "ItemStatsReading",
    "KeyValue",
    "MemoryKV",
    "RocksKV",
    "SequenceEntry",
    "SequenceStore",
    "UserColumns",
    "UserIndex",
    "UserSequence",
]
