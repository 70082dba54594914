"""A real Kafka broker (the default 4.x release) from LocalBroker: start, produce, consume, stop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka.broker_config import BrokerError, free_port
from streams.kafka.connection import KafkaClients
from streams.kafka.local_broker import LocalBroker

pytestmark = pytest.mark.integration  # never skipped: CI installs Java and Maven

REPO = Path(__file__).resolve().parents[2]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    # A zombie is a dead process still waiting for its parent to collect it.
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def brokers_on(data_dir: Path) -> list[int]:
    """Pids of any JVM running kafka.Kafka with this data_dir's properties file."""
    needle = str(data_dir / "server.properties").encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"kafka.Kafka" in argv and needle in argv and pid_alive(int(proc.name)):
                pids.append(int(proc.name))
    return pids


async def produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = KafkaClients.plaintext(bootstrap).producer()
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = KafkaClients.plaintext(bootstrap).consumer(
        topic,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(values) < expected:
                msg = await consumer.getone()
                values.append(msg.value)
    finally:
        await consumer.stop()
    return values


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    b = LocalBroker(free_port(), data_dir=tmp_path_factory.mktemp("kafka"))
    b.start(timeout=120)
    try:
        yield b
    finally:
        b.wipe()
        assert brokers_on(b.data_dir) == []


def test_produce_consume_and_status(broker: LocalBroker) -> None:
    st = broker.status()
    assert st.running and st.pid is not None and pid_alive(st.pid)
    assert st.bootstrap == broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
    assert st.data_dir == broker.data_dir
    assert st.log_file.is_file() and "Kafka Server started" in st.log_file.read_text()
    assert (broker.data_dir / "logs" / "meta.properties").is_file()

    asyncio.run(produce(broker.bootstrap_servers, "roundtrip", b"hello"))
    assert asyncio.run(consume_all(broker.bootstrap_servers, "roundtrip", 1)) == [b"hello"]


def test_start_when_running_is_a_noop(broker: LocalBroker) -> None:
    pid = broker.status().pid
    other = LocalBroker(broker.port, data_dir=broker.data_dir)
    began = time.monotonic()
    other.start()
    assert time.monotonic() - began < 5
    assert other.status().pid == pid
    assert other.ready()
    # The same data_dir asked for on another port: a clear error, not a 60 s wait.
    with pytest.raises(BrokerError, match="already runs on port"):
        LocalBroker(free_port(), data_dir=broker.data_dir).start(timeout=5)


async def test_start_from_inside_an_event_loop(broker: LocalBroker) -> None:
    # start()/ready() probe with asyncio.run; inside a running loop they must still work.
    broker.start()
    assert broker.ready()
    await produce(broker.bootstrap_servers, "from-loop", b"x")


def test_restart_keeps_messages_and_stop_leaves_no_process(broker: LocalBroker) -> None:
    asyncio.run(produce(broker.bootstrap_servers, "durable", b"before-restart"))
    old_pid = broker.status().pid
    assert old_pid is not None

    broker.stop()
    st = broker.status()
    assert not st.running and st.pid is None
    assert not pid_alive(old_pid)
    assert brokers_on(broker.data_dir) == []
    assert not (broker.data_dir / "broker.pid").exists()
    broker.stop()  # second stop: no-op

    broker.start(timeout=120)
    new_pid = broker.status().pid
    assert new_pid is not None and new_pid != old_pid
    asyncio.run(produce(broker.bootstrap_servers, "durable", b"after-restart"))
    values = asyncio.run(consume_all(broker.bootstrap_servers, "durable", 2))
    assert values == [b"before-restart", b"after-restart"]


def test_stop_from_another_process(broker: LocalBroker) -> None:
    # The demo's `stop` runs in a different process from the one that started the broker.
    pid = broker.status().pid
    assert pid is not None
    code = (
        "import sys; from streams.kafka.local_broker import LocalBroker; "
        "LocalBroker(int(sys.argv[1]), data_dir=sys.argv[2]).stop()"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(broker.port), str(broker.data_dir)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        timeout=60,
    )
    assert not broker.status().running
    assert not pid_alive(pid)
    broker.start(timeout=120)  # leave it running for the fixture's teardown


def test_context_manager_and_early_exit(tmp_path: Path) -> None:
    with LocalBroker(free_port(), data_dir=tmp_path / "cm") as b:
        pid = b.status().pid
        assert pid is not None and b.ready()
    assert not pid_alive(pid)
    assert not b.status().running

    # A JVM that dies at once is reported with the log tail, not after the full timeout.
    bad = LocalBroker(free_port(), data_dir=tmp_path / "cm", heap="-XX:+NoSuchStreamrankOption")
    began = time.monotonic()
    with pytest.raises(BrokerError, match="exited during startup") as info:
        bad.start(timeout=60)
    assert time.monotonic() - began < 30
    assert "NoSuchStreamrankOption" in str(info.value)
    assert not bad.status().running
    b.wipe()
    assert not b.data_dir.exists()
