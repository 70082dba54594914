"""`make demo` (streamrank demo) end to end: results printed, nothing left running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.kafka.broker_config import free_port


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line or environment mentions `text` (the demo's scratch folder:
    the broker's config lives there, the worker's STREAMRANK_STATE_DIR points there)."""
    needle = text.encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            blob = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if needle in blob:
            found.append(int(proc.name))
    return found


def test_demo_prints_ranked_results_and_cleans_up(models_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "STREAMRANK_MODELS_DIR": str(models_dir), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--users", "6", "--rounds", "2",
         "--port", str(port)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.count(" likes ") == 12  # 6 shoppers x 2 rounds, one line per ranked result
    assert "deadletters 1;" in out and "degraded answers 0" in out  # /metrics, read at the end
    assert "mean ms per search: decode" in out and "on CPUExecutionProvider" in out
    assert "share of the top 3" in out
    assert "searches, produce→result latency" in out
    assert processes_mentioning(str(tmp_path)) == []  # no worker or broker survives the demo
