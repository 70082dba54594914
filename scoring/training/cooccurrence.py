"""Item-to-item co-occurrence neighbours from training-period behaviour (before a cut-off).

Two items are neighbours when the same users acted on both. Weight: cosine with shrinkage,
    w(i, j) = |U_i & U_j| / (sqrt(|U_i| |U_j|) + shrink)
(shrink damps pairs seen by few users); each item keeps its `k` heaviest neighbours (ties: the
lower item hash first). The result ships in the model folder (scoring/neighbours.py) and is
refreshed at every retrain: a model version is served the neighbours it was trained with.

API:
    neighbours_from_events(events, k=100, shrink=10.0, max_per_user=1000) -> Neighbours
        events: (user_id, item_id) pairs in time order, all before the cut-off; a pair
        repeated counts once; a user's items beyond the last `max_per_user` are left out
        (bounds the cost of a few very heavy users, like the retained set does).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from contracts.ids import item_hash
from scoring.neighbours import Neighbours


def neighbours_from_events(
    events: Iterable[tuple[str, str]], *, k: int = 100, shrink: float = 10.0,
    max_per_user: int = 1000,
) -> Neighbours:
    per_user: dict[str, dict[str, None]] = defaultdict(dict)
    for user, item in events:
        seen = per_user[user]
        seen.pop(item, None)
        seen[item] = None  # most recent last
    item_index: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for u, (_, user_items) in enumerate(sorted(per_user.items())):
        kept = list(user_items)[-max_per_user:]
        rows += [u] * len(kept)
        cols += [item_index.setdefault(item, len(item_index)) for item in kept]
    n_items = len(item_index)
    if n_items < 2:
        return Neighbours.empty(k)
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                      shape=(len(per_user), n_items))
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    co = (x.T @ x).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    hashes = np.array([item_hash(i) for i in item_index], np.int64)  # by index
    keys: list[int] = []
    lengths: list[int] = []
    items: list[npt.NDArray[np.int64]] = []
    weights: list[npt.NDArray[np.float64]] = []
    # Rows in item-hash order; per row the k heaviest, heaviest first, ties by lower hash.
    for i in np.argsort(hashes, kind="stable"):
        start, end = co.indptr[i], co.indptr[i + 1]
        if start == end:
            continue
        cols = co.indices[start:end]
        w = co.data[start:end].astype(np.float64) / (np.sqrt(counts[i] * counts[cols]) + shrink)
        if len(w) > k:  # everything tied with the k-th stays until the hash decides
            keep = w >= -np.partition(-w, k - 1)[k - 1]
            cols, w = cols[keep], w[keep]
        order = np.lexsort((hashes[cols], -w))[:k]
        keys.append(int(hashes[i]))
        lengths.append(len(order))
        items.append(hashes[cols[order]])
        weights.append(w[order])
    if not keys:
        return Neighbours.empty(k)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return Neighbours(np.asarray(keys, np.int64), indptr, np.concatenate(items),
                      np.concatenate(weights).astype(np.float32), k)


__all__ = ["neighbours_from_events"]
