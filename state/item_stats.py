"""An item's behaviour statistics across all users, and THE definition of their decay.

The worker (item-keyed table, published on a compacted topic), the evaluation replay and the
training data all update and read item statistics through this module only, so a decayed
count means the same thing everywhere.

API:
    LAYOUT                          the default layout: every action type, windows 1d, 7d, 30d
    ItemStatsLayout(actions, windows_ms)
        .new() -> vector            a zero vector (float64[size])
        .apply(vector | None, action, ts) -> vector   one action at event time ts (ms); a new
                                    array, the input is not modified
        .read(vector | None, now) -> ItemStatsReading       one item, at time now (ms)
        .read_many(vectors, now) -> ItemStatsReading        candidates (None: never seen)
        .to_bytes(vector) / .from_bytes(raw)  storage form with a header naming the layout
        .name                       the layout in one line, e.g. "v1:view,click,...:86400000,..."
    apply(vector, action, ts), read(vector, now)   the same with LAYOUT

Vector (float64): all-time count per action [A] | decayed count per window x action [W, A]
at `as_of` | as_of | first ts | last ts (ms; 0 = never).

Decay: exponential with time constant tau = the window (1d, 7d, 30d): an action of weight 1 at
time t counts exp(-(now - t) / tau) at `now`. An action older than `as_of` (late, or delivered
out of order) is added with its own factor exp(-(as_of - t) / tau), so the result does not
depend on arrival order (up to float rounding). Read at a time before `as_of` (the statistics
already hold later actions, e.g. another worker's clock) the values are not extrapolated
backwards: they are the values at `as_of`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from contracts.ids import ACTIONS

Vector = npt.NDArray[np.float64]
DAY_MS = 86_400_000
DEFAULT_WINDOWS_MS = (DAY_MS, 7 * DAY_MS, 30 * DAY_MS)
_MAGIC = b"SRIS"
_FORMAT = 1
_HEAD = struct.Struct("<4sBBB")  # magic, format, actions, windows; then windows as int64


@dataclass(frozen=True)
class ItemStatsReading:
    """Statistics of C items read at `now`: what the feature builder consumes."""

    now: int
    actions: tuple[str, ...]
    windows_ms: tuple[int, ...]
    known: npt.NDArray[np.bool_]  # [C] any action seen
    counts: npt.NDArray[np.float64]  # [C, A] all-time
    decayed: npt.NDArray[np.float64]  # [C, W, A] at now
    first_ts: npt.NDArray[np.float64]  # [C] ms, 0 when unknown
    last_ts: npt.NDArray[np.float64]  # [C] ms, 0 when unknown

    def __len__(self) -> int:
        return int(self.known.shape[0])


@dataclass(frozen=True)
class ItemStatsLayout:
    actions: tuple[str, ...] = ACTIONS
    windows_ms: tuple[int, ...] = DEFAULT_WINDOWS_MS

    def __post_init__(self) -> None:
        unknown = set(self.actions) - set(ACTIONS)
        if unknown or not self.actions or len(set(self.actions)) != len(self.actions):
            raise ValueError(f"actions must be distinct action types, got {self.actions}")
        if not self.windows_ms or any(w <= 0 for w in self.windows_ms):
            raise ValueError("windows must be positive durations in ms")

    @property
    def name(self) -> str:
        """The layout in one line (format, actions, windows), e.g. for a record's `layout`."""
        windows = ",".join(str(w) for w in self.windows_ms)
        return f"v{_FORMAT}:{','.join(self.actions)}:{windows}"

    @property
    def size(self) -> int:
        a, w = len(self.actions), len(self.windows_ms)
        return a + w * a + 3

    @property
    def _taus(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.windows_ms, dtype=np.float64)

    def new(self) -> Vector:
        return np.zeros(self.size, dtype=np.float64)

    def _parts(self, v: Vector) -> tuple[Vector, Vector]:
        a, w = len(self.actions), len(self.windows_ms)
        return v[:a], v[a : a + w * a].reshape(w, a)

    def apply(self, vector: Vector | None, action: str, ts: int) -> Vector:
        """The statistics after one `action` at event time `ts` (ms)."""
        if action not in self.actions:
            raise ValueError(f"action {action!r} not in this layout {self.actions}")
        v = self.new() if vector is None else np.array(vector, dtype=np.float64, copy=True)
        if v.shape != (self.size,):
            raise ValueError(f"vector of {v.shape}, layout needs ({self.size},)")
        col = self.actions.index(action)
        counts, decayed = self._parts(v)
        as_of, first, last = v[-3], v[-2], v[-1]
        t = float(ts)
        new_item = counts.sum() == 0
        counts[col] += 1.0
        if t >= as_of:
            decayed *= np.exp(-(t - as_of) / self._taus)[:, None]
            decayed[:, col] += 1.0
            v[-3] = t
        else:  # a late action: its weight at as_of
            decayed[:, col] += np.exp(-(as_of - t) / self._taus)
        v[-2] = t if new_item or t < first else first
        v[-1] = max(last, t)
        return v

    def read(self, vector: Vector | None, now: int) -> ItemStatsReading:
        return self.read_many([vector], now)

    def read_many(self, vectors: Sequence[Vector | None], now: int) -> ItemStatsReading:
        """The statistics of each item at `now` (ms); None: an item never acted on."""
        c, a, w = len(vectors), len(self.actions), len(self.windows_ms)
        rows = np.zeros((c, self.size), dtype=np.float64)
        known = np.fromiter((v is not None for v in vectors), bool, c)
        if known.any():
            present = [v for v in vectors if v is not None]
            if any(v.shape != (self.size,) for v in present):
                raise ValueError(f"a vector is not of the layout's shape ({self.size},)")
            rows[known] = np.stack(present)
        counts = rows[:, :a].copy()
        decayed = rows[:, a : a + w * a].reshape(c, w, a).copy()
        elapsed = np.maximum(0.0, float(now) - rows[:, -3])  # never extrapolated backwards
        decayed *= np.exp(-elapsed[:, None] / self._taus[None, :])[:, :, None]
        return ItemStatsReading(
            now=int(now), actions=self.actions, windows_ms=self.windows_ms, known=known,
            counts=counts, decayed=decayed, first_ts=rows[:, -2].copy(),
            last_ts=rows[:, -1].copy(),
        )

    def to_bytes(self, vector: Vector) -> bytes:
        if vector.shape != (self.size,):
            raise ValueError(f"vector of {vector.shape}, layout needs ({self.size},)")
        head = _HEAD.pack(_MAGIC, _FORMAT, len(self.actions), len(self.windows_ms))
        codes = bytes(ACTIONS.index(x) for x in self.actions)
        windows = np.asarray(self.windows_ms, dtype="<i8").tobytes()
        return head + codes + windows + vector.astype("<f8").tobytes()

    def from_bytes(self, raw: bytes) -> Vector:
        """The vector stored in `raw`; ValueError when it was written with another layout."""
        magic, fmt, n_actions, n_windows = _HEAD.unpack_from(raw, 0)
        if magic != _MAGIC or fmt != _FORMAT:
            raise ValueError("not an item statistics record of a known format")
        offset = _HEAD.size
        actions = tuple(ACTIONS[c] for c in raw[offset : offset + n_actions])
        offset += n_actions
        windows = tuple(int(x) for x in np.frombuffer(raw, "<i8", n_windows, offset))
        offset += 8 * n_windows
        if (actions, windows) != (self.actions, self.windows_ms):
            raise ValueError(f"record layout {actions}/{windows} differs from "
                             f"{self.actions}/{self.windows_ms}")
        return np.frombuffer(raw, "<f8", self.size, offset).astype(np.float64)


LAYOUT = ItemStatsLayout()


def apply(vector: Vector | None, action: str, ts: int) -> Vector:
    """LAYOUT.apply: the statistics after one `action` at `ts` (ms)."""
    return LAYOUT.apply(vector, action, ts)


def read(vector: Vector | None, now: int) -> ItemStatsReading:
    """LAYOUT.read: one item's statistics at `now` (ms)."""
    return LAYOUT.read(vector, now)


def decay_factor(elapsed_ms: float, tau_ms: float) -> float:
    """exp(-elapsed / tau), elapsed clamped at 0: the decay of every decayed count here and of
    the user's activity in state.interactions."""
    return float(np.exp(-max(0.0, elapsed_ms) / tau_ms))


__all__ = [
    "DAY_MS",
    "DEFAULT_WINDOWS_MS",
    "LAYOUT",
    "ItemStatsLayout",
    "ItemStatsReading",
    "Vector",
    "apply",
    "decay_factor",
    "read",
]
