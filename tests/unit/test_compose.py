"""docker-compose.yml, validated by a real compose implementation (no engine needed).

`.ci/run` installs Debian's docker-compose, so in CI this never skips; on a developer machine
without it the validation is skipped and says how to get it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.kafka.broker_config import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose")
if COMPOSE is None and os.environ.get("CI"):
    raise RuntimeError("docker-compose is required in CI (.ci/run installs it)")
needs_compose = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose not installed (apt-get install docker-compose)"
)


def config(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    return subprocess.run([COMPOSE, "-f", str(path), *extra, "config"], capture_output=True,
                          text=True, timeout=60, cwd=path.parent)


def resolved(*extra: str) -> dict[str, Any]:
    done = config(ROOT / "docker-compose.yml", *extra)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = yaml.safe_load(done.stdout)
    return data


@needs_compose
def test_compose_file_validates_with_every_service() -> None:
    services = resolved("--profile", "trainer")["services"]
    assert set(services) == {"kafka", "topics", "worker", "trainer", "prometheus"}
    # The same Kafka release as the local broker and the tests.
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    # Scalable: no fixed name, no published host port that two replicas would fight over.
    worker = services["worker"]
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert worker["environment"]["STREAMRANK_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "/models" in " ".join(str(v) for v in services["trainer"]["volumes"])
    assert "--every" in services["trainer"]["command"]
    # Workers run the serving image; only the trainer's has torch (Dockerfile stages).
    for name in ("topics", "worker"):
        assert services[name]["build"]["target"] == "runtime", name
    assert services["trainer"]["build"]["target"] == "trainer"
    assert services["trainer"]["image"] != services["worker"]["image"]


@needs_compose
def test_only_the_trainer_is_behind_a_profile() -> None:
    services = resolved()["services"]
    assert services["trainer"]["profiles"] == ["trainer"]
    assert all("profiles" not in s for name, s in services.items() if name != "trainer")


@needs_compose
def test_a_broken_file_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  worker:\n    image: x\n    depends_on:\n"
                      "      kafka:\n        condition: whenever\n")
    assert config(broken).returncode != 0


def test_every_build_target_is_a_dockerfile_stage() -> None:
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (ROOT / "Dockerfile").read_text(),
                            re.MULTILINE | re.IGNORECASE))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    targets = {s["build"]["target"] for s in compose["services"].values() if "build" in s}
    targets |= {compose["x-streamrank"]["build"]["target"]}
    assert targets and targets <= stages, targets - stages


def test_prometheus_scrapes_the_workers_metrics_port() -> None:
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    job = prom["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert str(job["dns_sd_configs"][0]["port"]) in compose["services"]["worker"]["expose"]
