"""Item-to-item co-occurrence neighbours shipped in a hybrid model's folder.

Learned from training-period behaviour (scoring/training/cooccurrence.py) and frozen with the
model version, so the features a version is served are the ones it was trained on; a retrain
refreshes them. Keyed by item hash (contracts.ids.item_hash), like the user's interaction
columns, so a lookup needs no catalog.

API:
    Neighbours.from_lists({item_hash: [(neighbour_hash, weight), ...]}, k)
    Neighbours.empty(k)
    .padded(hashes [C]) -> (neighbour hashes int64 [C, k], weights float32 [C, k]); padding
        has weight 0 and hash 0
    .save(path) / Neighbours.load(path)   an .npz (NEIGHBOURS_FILE in the model folder)
    len(n), n.edges
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

NEIGHBOURS_FILE = "neighbours.npz"


class Neighbours:
    """CSR over items sorted by hash: row i's neighbours are items[indptr[i]:indptr[i+1]]."""

    def __init__(self, keys: npt.ArrayLike, indptr: npt.ArrayLike, items: npt.ArrayLike,
                 weights: npt.ArrayLike, k: int) -> None:
        self.keys = np.asarray(keys, dtype=np.int64)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.k = int(k)
        n = len(self.keys)
        if self.k < 1:
            raise ValueError("k must be >= 1")
        if self.indptr.shape != (n + 1,) or len(self.items) != len(self.weights):
            raise ValueError("inconsistent neighbour arrays")
        # Compared, not subtracted: differences of 64-bit hashes overflow.
        if n and (np.any(self.keys[1:] <= self.keys[:-1]) or self.indptr[0] != 0
                  or self.indptr[-1] != len(self.items) or np.any(np.diff(self.indptr) < 0)
                  or np.any(np.diff(self.indptr) > self.k)):
            raise ValueError("neighbour keys must be sorted and unique, rows at most k long")

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def edges(self) -> int:
        return len(self.items)

    @classmethod
    def empty(cls, k: int) -> Neighbours:
        return cls(np.zeros(0), np.zeros(1), np.zeros(0), np.zeros(0), k)

    @classmethod
    def from_lists(cls, lists: Mapping[int, Iterable[tuple[int, float]]], k: int) -> Neighbours:
        """Neighbours from per-item lists; each list keeps its k heaviest (ties: lower hash)."""
        keys = sorted(lists)
        indptr, items, weights = [0], [], []
        for key in keys:
            row = sorted(lists[key], key=lambda p: (-p[1], p[0]))[:k]
            items += [h for h, _ in row]
            weights += [w for _, w in row]
            indptr.append(len(items))
        return cls(np.asarray(keys, np.int64), np.asarray(indptr, np.int64),
                   np.asarray(items, np.int64), np.asarray(weights, np.float32), k)

    def padded(
        self, hashes: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        q = np.asarray(hashes, dtype=np.int64)
        c = len(q)
        out_h = np.zeros((c, self.k), dtype=np.int64)
        out_w = np.zeros((c, self.k), dtype=np.float32)
        if not len(self.keys) or not c:
            return out_h, out_w
        rows = np.searchsorted(self.keys, q)
        rows[rows == len(self.keys)] = 0
        found = self.keys[rows] == q
        start = self.indptr[rows]
        length = np.where(found, self.indptr[rows + 1] - start, 0)
        offsets = np.arange(self.k)
        valid = offsets[None, :] < length[:, None]
        idx = np.where(valid, start[:, None] + offsets[None, :], 0)
        if len(self.items):
            out_h[valid] = self.items[idx[valid]]
            out_w[valid] = self.weights[idx[valid]]
        return out_h, out_w

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, keys=self.keys, indptr=self.indptr, items=self.items,
                     weights=self.weights, k=np.int64(self.k))

    @classmethod
    def load(cls, path: Path) -> Neighbours:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["keys"], z["indptr"], z["items"], z["weights"], int(z["k"]))


__all__ = ["NEIGHBOURS_FILE", "Neighbours"]
