"""The behaviour spec and the neighbour table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scoring.behaviour_spec import BehaviourSpec, window_name
from scoring.neighbours import Neighbours


def test_spec_round_trips_through_its_dict() -> None:
    spec = BehaviourSpec(neighbours=20, retained=500)
    assert BehaviourSpec.from_dict(spec.to_dict()) == spec


def test_unknown_version_and_other_names_are_refused() -> None:
    data = BehaviourSpec().to_dict()
    with pytest.raises(ValueError, match="version"):
        BehaviourSpec.from_dict({**data, "version": 99})
    with pytest.raises(ValueError, match="names"):
        BehaviourSpec.from_dict({**data, "names": [*data["names"][:-1], "surprise"]})
    with pytest.raises(ValueError):
        BehaviourSpec.from_dict({"version": 1})


def test_names_follow_windows_and_actions() -> None:
    spec = BehaviourSpec(windows_ms=(3_600_000, 86_400_000), actions=("click", "purchase"))
    assert "item_decayed_1h_click" in spec.names and "item_count_view" not in spec.names
    assert window_name(90_000) == "90000ms"


def test_neighbours_padded_lookup_and_round_trip(tmp_path: Path) -> None:
    n = Neighbours.from_lists({5: [(1, 0.5), (2, 0.9), (3, 0.1)], -7: [(5, 1.0)]}, k=2)
    hashes, weights = n.padded([5, 42, -7])
    assert hashes.tolist() == [[2, 1], [0, 0], [5, 0]]
    assert weights.tolist() == [[pytest.approx(0.9), 0.5], [0.0, 0.0], [1.0, 0.0]]
    n.save(tmp_path / "n.npz")
    again = Neighbours.load(tmp_path / "n.npz")
    assert np.array_equal(again.padded([5])[0], hashes[:1]) and again.k == 2
    assert Neighbours.empty(3).padded([1])[1].sum() == 0


def test_malformed_neighbours_are_refused() -> None:
    with pytest.raises(ValueError):
        Neighbours(np.array([2, 1]), np.array([0, 0, 0]), np.zeros(0), np.zeros(0), 2)
