"""The storage interface state is written against, and its two standalone implementations."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

# Faust tables, dicts and RocksKV all satisfy this; state logic needs nothing more.
KeyValue = MutableMapping[str, bytes]


class MemoryKV(dict[str, bytes]):
    """In-process store: tests and tools."""


class RocksKV(MutableMapping[str, bytes]):
    """A rocksdict database as a str→bytes mapping, for state outside a Faust worker."""

    def __init__(self, path: Path) -> None:
        from rocksdict import Options, Rdict  # imported here: only this store needs the binding

        path.mkdir(parents=True, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        self._db: Any = Rdict(str(path), options=opts)
        self._closed = False

    def __getitem__(self, key: str) -> bytes:
        value = self._db.get(key.encode())
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: str, value: bytes) -> None:
        self._db[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        if self._db.get(key.encode()) is None:
            raise KeyError(key)
        del self._db[key.encode()]

    def __iter__(self) -> Iterator[str]:
        for key in self._db.keys():  # noqa: SIM118 (Rdict itself is not a key iterator)
            yield bytes(key).decode()

    def __len__(self) -> int:
        return sum(1 for _ in self._db.keys())  # noqa: SIM118

    def close(self) -> None:
        if not self._closed:
            self._db.close()
            self._closed = True
