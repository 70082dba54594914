from collections.abc import Iterator
from pathlib import Path

import pytest

from state import KeyValue, MemoryKV, RocksKV


@pytest.fixture(params=["memory", "rocksdb"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValue]:
    """Every state test runs over both stores."""
    if request.param == "memory":
        yield MemoryKV()
    else:
        store = RocksKV(tmp_path / "rocks")
        yield store
        store.close()


@pytest.fixture
def reopen(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Factory: a RocksKV at a path, to check what survives a close."""
    opened: list[RocksKV] = []

    def _open() -> RocksKV:
        store = RocksKV(tmp_path / "durable")
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()
