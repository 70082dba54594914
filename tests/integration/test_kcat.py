"""README's kcat example, run as written against a running worker: a result within 5 s.

The commands are read from README.md's "With kcat" block, so the README cannot drift from what
works; only the broker address and the topic prefix are swapped for this test's own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from contracts import RankedResult, decode
from tests.integration.conftest import Deployment

README = Path(__file__).resolve().parents[2] / "README.md"
KCAT = shutil.which("kcat")
if KCAT is None and os.environ.get("CI"):
    raise RuntimeError("kcat is required in CI (.ci/run installs it)")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (apt-get install kcat)")


def readme_commands() -> list[str]:
    text = README.read_text()
    block = text.split("### With kcat", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", "", block)  # shell line continuations
    return [line.strip() for line in joined.splitlines() if line.strip().startswith(("printf",
                                                                                     "kcat"))]


def localize(command: str, dep: Deployment) -> str:
    return command.replace("127.0.0.1:9092", dep.bootstrap).replace(
        "-t streamrank.", f"-t {dep.topics.prefix}"
    )


def sh(command: str) -> str:
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_readme_kcat_example_gives_a_ranked_result_within_5s(
    deployment: Deployment,
) -> None:
    dep = deployment
    commands = [localize(c, dep) for c in readme_commands()]
    produce = [c for c in commands if c.startswith("printf")]
    consume = [c for c in commands if c.startswith("kcat -C")]
    search = next(c for c in produce if "events.search" in c)
    assert len(produce) == 4 and len(consume) == 2

    worker = dep.start_worker()
    await worker.wait_ready()
    for command in produce:
        if command is not search:
            sh(command)
    # "Running" means the agents have consumed: the catalog and the action are applied.
    await worker.wait_for(lambda w: w.get("/health/")["catalog_items"] == 2, "catalog")
    await worker.wait_for(lambda w: w.get("/users/u42/sequence/")["entries"], "action")

    started = time.monotonic()
    sh(search)
    result = None
    while result is None and time.monotonic() - started < 5.0:
        for line in sh(consume[0]).splitlines():
            if line.strip() and (r := decode(line.encode(), RankedResult)).request_id == "req-1":
                result = r
    elapsed = time.monotonic() - started
    assert result is not None, "no RankedResult for req-1 within 5 s"
    assert elapsed < 5.0
    # sku-2 is unknown to the catalog: still answered, after the known grinder.
    assert [i.item_id for i in result.items] == ["sku-3", "sku-2"]
    assert sh(consume[1]) == ""  # nothing in the deadletter
