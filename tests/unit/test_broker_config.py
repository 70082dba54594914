"""LocalBroker's configuration and bookkeeping, checked without starting Java."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.kafka import broker_config as broker_mod
from streams.kafka.broker_config import (
    KAFKA_VERSION,
    LEGACY_KAFKA_VERSION,
    BrokerError,
    broker_command,
    core_jar,
    default_data_dir,
    default_jars_dir,
    free_port,
    generate_cluster_id,
    port_is_free,
    render_log4j2_properties,
    render_log4j_properties,
    render_server_properties,
    uses_log4j2,
)
from streams.kafka.broker_setup import maven_command
from streams.kafka.local_broker import LocalBroker


def parse_props(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert key not in props, f"duplicate key {key}"
            props[key] = value
    return props


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    props = parse_props(
        render_server_properties(port=19092, controller_port=19093, log_dir=tmp_path / "logs")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    protocol_map = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    assert protocol_map == {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT"}
    assert props["log.dirs"] == str(tmp_path / "logs")
    for key in (
        "offsets.topic.replication.factor",
        "offsets.topic.num.partitions",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "default.replication.factor",
        "min.insync.replicas",
        "num.partitions",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "true"
    assert int(props["log.cleaner.dedupe.buffer.size"]) <= 16 * 1024 * 1024


def test_server_properties_overrides_replace_defaults(tmp_path: Path) -> None:
    props = parse_props(
        render_server_properties(
            port=1,
            controller_port=2,
            log_dir=tmp_path,
            overrides={"num.partitions": "4", "log.retention.ms": "1000"},
        )
    )
    assert props["num.partitions"] == "4"
    assert props["log.retention.ms"] == "1000"


def test_server_properties_rejects_shared_port(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must differ"):
        render_server_properties(port=9092, controller_port=9092, log_dir=tmp_path)


def test_log4j_properties_info_to_stdout() -> None:
    text = render_log4j_properties()
    assert "log4j.rootLogger=INFO, stdout" in text
    assert "org.apache.log4j.ConsoleAppender" in text


def test_log4j2_properties_for_kafka4() -> None:
    text = render_log4j2_properties()
    props = dict(line.split(" = ", 1) for line in text.splitlines())
    assert props["rootLogger.level"] == "INFO"
    assert props["appender.stdout.type"] == "Console"
    quiet = {props[k]: props[k.replace(".name", ".level")] for k in props if k.endswith(".name")
             and k.startswith("logger.")}
    assert quiet["kafka.request.logger"] == "WARN"


def test_default_is_kafka4_and_39_stays_supported() -> None:
    assert int(KAFKA_VERSION.split(".")[0]) >= 4 and uses_log4j2(KAFKA_VERSION)
    assert LEGACY_KAFKA_VERSION.startswith("3.9") and not uses_log4j2(LEGACY_KAFKA_VERSION)
    # The pom's default must be the code's default: `mvn` without -D resolves the same release.
    pom = (Path(broker_mod.__file__).parent / "pom.xml").read_text()
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom


@pytest.mark.parametrize(("version", "logging"), [("4.1.1", "log4j2"), ("3.9.1", "reload4j")])
def test_maven_fetches_the_logging_backend_of_the_version(
    tmp_path: Path, version: str, logging: str
) -> None:
    cmd = maven_command("mvn", tmp_path, version)
    assert f"-Dkafka.version={version}" in cmd and f"-Dkafka.logging={logging}" in cmd
    assert f"<value>{logging}</value>" in (Path(broker_mod.__file__).parent / "pom.xml").read_text()


def test_broker_command_kafka4_reads_log4j2(tmp_path: Path) -> None:
    cmd = broker_command(jars_dir=tmp_path / "libs", props_file=tmp_path / "server.properties",
                         log4j_file=tmp_path / "log4j2.properties", heap="-Xmx128m",
                         log_dir=tmp_path, version="4.1.1")
    assert f"-Dlog4j2.configurationFile={tmp_path / 'log4j2.properties'}" in cmd
    assert not any(part.startswith("-Dlog4j.configuration=") for part in cmd)


def test_broker_command(tmp_path: Path) -> None:
    cmd = broker_command(
        jars_dir=tmp_path / "libs",
        props_file=tmp_path / "server.properties",
        log4j_file=tmp_path / "log4j.properties",
        heap="-Xms64m -Xmx128m",
        log_dir=tmp_path,
        version="3.9.1",
    )
    assert cmd[0] == "java"
    assert cmd[1:3] == ["-Xms64m", "-Xmx128m"]
    assert f"-Dlog4j.configuration=file:{tmp_path / 'log4j.properties'}" in cmd
    assert cmd[cmd.index("-cp") + 1] == f"{tmp_path / 'libs'}/*"
    assert cmd[-2:] == ["kafka.Kafka", str(tmp_path / "server.properties")]


def test_default_dirs_honor_xdg() -> None:
    env = {"HOME": "/home/u", "XDG_STATE_HOME": "/state", "XDG_CACHE_HOME": "/cache"}
    assert default_data_dir(9092, env) == Path("/state/streamrank/kafka-9092")
    assert default_jars_dir(env) == Path(f"/cache/streamrank/kafka-{KAFKA_VERSION}/libs")
    assert default_jars_dir(env, "3.9.1") == Path("/cache/streamrank/kafka-3.9.1/libs")


def test_default_dirs_fallback_and_relative_xdg_ignored() -> None:
    env = {"HOME": "/home/u", "XDG_STATE_HOME": "relative/state"}
    assert default_data_dir(19092, env) == Path("/home/u/.local/state/streamrank/kafka-19092")
    assert default_jars_dir(env) == Path(f"/home/u/.cache/streamrank/kafka-{KAFKA_VERSION}/libs")


def test_cluster_id_is_kafka_uuid() -> None:
    ids = {generate_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_free_port_and_port_is_free() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert port_is_free(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert not port_is_free(port)


def test_instance_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    b = LocalBroker(19092)
    assert b.data_dir == tmp_path / "state" / "streamrank" / "kafka-19092"
    assert b.jars_dir == tmp_path / "cache" / "streamrank" / f"kafka-{KAFKA_VERSION}" / "libs"
    assert b.log4j_file.name == "log4j2.properties"
    old = LocalBroker(19092, version="3.9.1")
    assert old.jars_dir == tmp_path / "cache" / "streamrank" / "kafka-3.9.1" / "libs"
    assert old.log4j_file.name == "log4j.properties"
    assert b.bootstrap_servers == "127.0.0.1:19092"
    assert b.heap == "-Xms256m -Xmx512m"


def test_status_and_stop_when_never_started(tmp_path: Path) -> None:
    b = LocalBroker(free_port(), data_dir=tmp_path / "d")
    st = b.status()
    assert st.running is False and st.pid is None
    assert st.bootstrap == b.bootstrap_servers
    assert st.log_file == tmp_path / "d" / "broker.log"
    b.stop()  # no-op
    b.wipe()
    assert not (tmp_path / "d").exists()


def test_stale_pid_file_is_not_running(tmp_path: Path) -> None:
    b = LocalBroker(free_port(), data_dir=tmp_path)
    # A live pid that is not a broker (pid reuse) must not count as the broker.
    b.pid_file.write_text(f"{os.getpid()}\n")
    assert b.status().running is False
    b.stop()  # must not signal this test process
    assert not b.pid_file.exists()


def test_ensure_jars_without_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    b = LocalBroker(free_port(), data_dir=tmp_path / "d", jars_dir=tmp_path / "jars")
    with pytest.raises(BrokerError, match="mvn"):
        b.ensure_jars()
    assert not (tmp_path / "jars").exists()


def test_ensure_jars_cached_needs_no_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / core_jar()).write_bytes(b"")
    assert LocalBroker(free_port(), jars_dir=jars, data_dir=tmp_path / "d").ensure_jars() == jars


def test_start_without_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BrokerError, match="java"):
        LocalBroker(free_port(), data_dir=tmp_path).start()


def test_start_fails_when_port_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} .* already in use"):
            LocalBroker(port, data_dir=tmp_path).start()
    assert not (tmp_path / "broker.pid").exists()


def test_stop_kills_a_broker_that_ignores_sigterm(tmp_path: Path) -> None:
    b = LocalBroker(free_port(), data_dir=tmp_path)
    # A stand-in whose argv looks like this data_dir's broker but which ignores SIGTERM.
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "kafka.Kafka", str(b.props_file)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        b.pid_file.write_text(f"{proc.pid}\n")
        assert b.status() == (True, proc.pid, b.bootstrap_servers, b.log_file, tmp_path)
        began = time.monotonic()
        b.stop(timeout=1)
        assert 1 <= time.monotonic() - began < 10
        assert not b.status().running and not b.pid_file.exists()
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
