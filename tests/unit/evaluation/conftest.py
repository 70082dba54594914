"""Both layouts of one generated MovieLens copy, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.evaluation.fixtures import Fixture, generate, write_100k, write_latest


@pytest.fixture(scope="session")
def fixture_data() -> Fixture:
    return generate()


@pytest.fixture(scope="session")
def latest_dir(tmp_path_factory: pytest.TempPathFactory, fixture_data: Fixture) -> Path:
    return write_latest(fixture_data, tmp_path_factory.mktemp("ml-latest-small"))


@pytest.fixture(scope="session")
def ml100k_dir(tmp_path_factory: pytest.TempPathFactory, fixture_data: Fixture) -> Path:
    return write_100k(fixture_data, tmp_path_factory.mktemp("ml-100k"))
