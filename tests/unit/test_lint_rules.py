"""The rules `make lint` enforces really catch a violation (each is injected into a scratch copy
of the packages): an upward import, serving code importing torch, the worker importing tools,
an aiokafka client built outside the connection factory, and a module over 400 lines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "state", "scoring", "streams", "evaluation")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages and pyproject.toml (which holds the rules), copied once."""
    root = tmp_path_factory.mktemp("lint-scratch")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("module", "line", "expected"), [
    ("streams/worker/search.py", "import evaluation.results",
     "streams.worker.search -> evaluation"),
    ("scoring/batcher.py", "import torch", "scoring.batcher -> torch"),
    ("scoring/registry.py", "import scoring.training.export",
     "scoring.registry -> scoring.training"),
    ("streams/worker/app.py", "import streams.tools.tail", "streams.worker.app -> streams.tools"),
    ("state/sequence.py", "import streams.settings", "state.sequence -> streams.settings"),
])
def test_import_contracts_catch_a_forbidden_import(
    scratch: Path, module: str, line: str, expected: str
) -> None:
    path = scratch / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n{line}  # injected by the test\n")
        result = _lint_imports(scratch)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert expected in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize("name", ["AIOKafkaProducer", "AIOKafkaConsumer"])
def test_an_aiokafka_client_outside_the_factory_is_banned(scratch: Path, name: str) -> None:
    code = f"from aiokafka import {name}\n\nclient = {name}(bootstrap_servers='x')\n"
    outside = scratch / "streams" / "tools" / "rogue_client.py"
    outside.write_text(code)
    inside = scratch / "streams" / "kafka" / "connection.py"
    try:
        flagged = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "--select", "TID251",
                                  str(outside)], cwd=scratch, capture_output=True, text=True,
                                 check=False)
        allowed = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "--select", "TID251",
                                  str(inside)], cwd=scratch, capture_output=True, text=True,
                                 check=False)
    finally:
        outside.unlink()
    assert flagged.returncode != 0 and "TID251" in flagged.stdout, flagged.stdout
    assert allowed.returncode == 0, allowed.stdout


def test_a_module_over_400_lines_fails(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "fine.py").write_text("x = 1\n" * 400)
    script = [sys.executable, str(ROOT / "scripts" / "module_size.py")]
    assert subprocess.run([*script, str(package)], check=False).returncode == 0
    (package / "big.py").write_text("x = 1\n" * 401)
    result = subprocess.run([*script, str(package)], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "big.py: 401 lines" in result.stdout
