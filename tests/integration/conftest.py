"""A real Kafka broker for the whole test session, on its own free port and data folder, so a
broker already running for development is neither used nor disturbed. Never skipped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from contracts import TopicNames
from streams.client import RankingClient
from streams.kafka.broker_config import free_port, sasl_plain_listener
from streams.kafka.connection import KafkaClients
from streams.kafka.local_broker import LocalBroker
from streams.settings import Settings
from streams.tools.worker_process import WorkerProcess, worker_env

if TYPE_CHECKING:
    from streams.kafka.connection import Consumer, Producer

# The session broker also listens with SASL/PLAIN for this account (test_security.py).
SASL_USER, SASL_PASSWORD = "alice", "alice-secret-7f3"


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    port, sasl_port = free_port(), free_port()
    broker = LocalBroker(port=port, data_dir=tmp_path_factory.mktemp("kafka"),
                         overrides=sasl_plain_listener(port, sasl_port, {SASL_USER: SASL_PASSWORD}))
    broker.sasl_bootstrap = f"127.0.0.1:{sasl_port}"  # type: ignore[attr-defined]
    broker.start()
    yield broker
    broker.stop()


def sasl_env(kafka: LocalBroker) -> dict[str, str]:
    """STREAMRANK_* variables that connect to the session broker's SASL listener."""
    return {
        "STREAMRANK_BOOTSTRAP_SERVERS": kafka.sasl_bootstrap,  # type: ignore[attr-defined]
        "STREAMRANK_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAMRANK_SASL_MECHANISM": "PLAIN",
        "STREAMRANK_SASL_USERNAME": SASL_USER,
        "STREAMRANK_SASL_PASSWORD": SASL_PASSWORD,
    }


def sasl_clients(kafka: LocalBroker) -> KafkaClients:
    return KafkaClients(Settings(
        bootstrap_servers=kafka.sasl_bootstrap,  # type: ignore[attr-defined]
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
        sasl_username=SASL_USER, sasl_password=SASL_PASSWORD,  # type: ignore[arg-type]
    ))


class Deployment:
    """One worker with its own consumer group and topic prefix on the session's broker."""

    def __init__(self, kafka: LocalBroker, tmp: Path, models_dir: Path) -> None:
        self.bootstrap = kafka.bootstrap_servers
        self.clients = KafkaClients.plaintext(self.bootstrap)  # the tests' own: plain listener
        self.run_id = uuid.uuid4().hex[:8]
        self.tmp = tmp
        self.env = worker_env(
            self.clients, tmp / "state", self.run_id, models_dir=models_dir, app_prefix="test"
        )
        self.topics = TopicNames(self.env["STREAMRANK_TOPIC_PREFIX"])
        self.worker: WorkerProcess | None = None
        self.starts = 0

    def start_worker(self, **overrides: str) -> WorkerProcess:
        self.starts += 1
        env = {**self.env, **overrides}
        self.worker = WorkerProcess(env, self.tmp / f"worker-{self.starts}.log")
        return self.worker

    def producer(self, **options: Any) -> Producer:
        return self.clients.producer(**{"acks": "all", **options})

    def consumer(self, *topics: str, **options: Any) -> Consumer:
        return self.clients.consumer(*topics, **{"auto_offset_reset": "earliest", **options})

    def client(self, **options: Any) -> RankingClient:
        """The client library, reading results from now on (start it before publishing)."""
        return RankingClient(self.clients, self.topics, **options)


@pytest.fixture
async def deployment(
    kafka: LocalBroker, tmp_path: Path, models_dir: Path
) -> AsyncIterator[Deployment]:
    dep = Deployment(kafka, tmp_path, models_dir)
    yield dep
    if dep.worker is not None:
        dep.worker.stop()
