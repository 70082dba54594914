"""The local broker's configuration: versions, paths, server and logging properties, ports.

Pure functions (no process is started here), unit-tested without Java; streams/kafka/
local_broker.py runs the JVM with what they render.
"""

from __future__ import annotations

import base64
import errno
import logging
import os
import shlex
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

# The default broker: a current Kafka 4 release from Maven Central. 3.9 stays supported
# (LocalBroker(version=LEGACY_KAFKA_VERSION); tests/integration/test_kafka39.py runs on it).
KAFKA_VERSION = "4.1.1"
LEGACY_KAFKA_VERSION = "3.9.1"
HOST = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_HEAP = "-Xms256m -Xmx512m"
NODE_ID = 1
POM_PATH = Path(__file__).resolve().parent / "pom.xml"
BROKER_MAIN = "kafka.Kafka"
# Rotate broker.log at start beyond this size, so a long-lived data_dir does not grow unbounded.
MAX_LOG_BYTES = 16 * 1024 * 1024

class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped."""


# --------------------------------------------------------------------------------------------
# Pure helpers (no I/O beyond reading the environment): unit-tested without Java.


def _xdg_dir(var: str, fallback: str, env: Mapping[str, str]) -> Path:
    # The XDG spec says a relative value must be ignored.
    value = env.get(var, "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME") or str(Path.home())) / fallback


def default_data_dir(port: int, env: Mapping[str, str] | None = None) -> Path:
    """``${XDG_STATE_HOME:-~/.local/state}/streamrank/kafka-<port>``."""
    base = _xdg_dir("XDG_STATE_HOME", ".local/state", os.environ if env is None else env)
    return base / "streamrank" / f"kafka-{port}"


def core_jar(version: str = KAFKA_VERSION) -> str:
    """The jar whose presence tells a finished fetch from an empty or foreign directory."""
    return f"kafka_2.13-{version}.jar"


def major(version: str) -> int:
    return int(version.split(".", 1)[0])


def uses_log4j2(version: str) -> bool:
    """Kafka 4 logs through log4j2 and ignores the log4j 1.x properties file of 3.x."""
    return major(version) >= 4


def log_config_name(version: str) -> str:
    return "log4j2.properties" if uses_log4j2(version) else "log4j.properties"


def default_jars_dir(env: Mapping[str, str] | None = None, version: str = KAFKA_VERSION) -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/streamrank/kafka-<version>/libs``."""
    base = _xdg_dir("XDG_CACHE_HOME", ".cache", os.environ if env is None else env)
    return base / "streamrank" / f"kafka-{version}" / "libs"


def generate_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 chars)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        # Kafka's own generator rejects a leading '-' because CLIs would read it as a flag.
        if not cid.startswith("-"):
            return cid


def render_server_properties(
    *,
    port: int,
    controller_port: int,
    log_dir: Path,
    node_id: int = NODE_ID,
    overrides: Mapping[str, str] | None = None,
) -> str:
    """The ``server.properties`` of a combined broker+controller listening on 127.0.0.1."""
    if port == controller_port:
        raise ValueError(f"broker and controller ports must differ (both {port})")
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": f"{node_id}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        # One node: every internal topic must accept a replication factor and ISR of 1.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # 50 partitions by default; one is plenty here and makes exactly-once start faster.
        "transaction.state.log.num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        # Consumers join at once instead of waiting 3 s for more members that never come.
        "group.initial.rebalance.delay.ms": "0",
        # The default 128 MiB would be allocated on heap by the log cleaner (compacted topics).
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
    }
    if overrides:
        # {controller_port} lets overrides name the port chosen at start.
        props.update({k: v.replace("{controller_port}", str(controller_port))
                      for k, v in overrides.items()})
    lines = ["# Written by streams/kafka/local_broker.py; rewritten at every start."]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def sasl_plain_listener(port: int, sasl_port: int, users: Mapping[str, str]) -> dict[str, str]:
    """Overrides that add a SASL_PLAINTEXT listener (mechanism PLAIN, these user → password
    pairs) on `sasl_port` beside the PLAINTEXT one: for testing clients' security settings.
    The controller and inter-broker traffic stay on PLAINTEXT."""
    accounts = " ".join(f'user_{user}="{password}"' for user, password in users.items())
    return {
        "listeners": f"PLAINTEXT://{HOST}:{port},SASL_PLAINTEXT://{HOST}:{sasl_port},"
        f"CONTROLLER://{HOST}:{{controller_port}}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port},SASL_PLAINTEXT://{HOST}:{sasl_port}",
        "listener.security.protocol.map":
            "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {accounts};",
    }


# Loggers whose INFO chatter drowns the useful lines (both logging configurations use them).
QUIET_LOGGERS = (
    # Per-request, per-partition-state and cleaner chatter.
    "kafka.request.logger", "state.change.logger", "kafka.log.LogCleaner",
    "kafka.authorizer.logger", "org.apache.kafka.storage.internals.log", "kafka.log",
    "org.apache.kafka.clients",
    # The full config dump (300+ lines per start); server.properties sits next to the log.
    "kafka.server.KafkaConfig", "org.apache.kafka.common.config.AbstractConfig",
    # One "Starting" line per background thread.
    "kafka.server.DelayedOperationPurgatory$ExpiredOperationReaper",
    "kafka.server.ClientQuotaManager$ThrottledChannelReaper",
    "kafka.server.NodeToControllerRequestThread",
)


def render_log4j2_properties() -> str:
    """log4j2 config (Kafka 4.x): INFO to stdout, which ``start`` redirects to broker.log."""
    lines = [
        "status = warn",
        "appender.stdout.type = Console",
        "appender.stdout.name = STDOUT",
        "appender.stdout.layout.type = PatternLayout",
        "appender.stdout.layout.pattern = [%d] %p %m (%c)%n",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.stdout.ref = STDOUT",
    ]
    for n, name in enumerate(QUIET_LOGGERS):
        lines += [f"logger.quiet{n}.name = {name}", f"logger.quiet{n}.level = WARN"]
    return "\n".join(lines) + "\n"


def render_log_config(version: str) -> str:
    """The logging configuration that broker version reads."""
    return render_log4j2_properties() if uses_log4j2(version) else render_log4j_properties()


def log_config_option(version: str, config_file: Path) -> str:
    """The JVM system property that points that broker version at its logging config."""
    if uses_log4j2(version):
        return f"-Dlog4j2.configurationFile={config_file}"
    return f"-Dlog4j.configuration=file:{config_file}"


def render_log4j_properties() -> str:
    """log4j 1.x (reload4j) config (Kafka 3.x): INFO to stdout, redirected to broker.log."""
    lines = [
        "log4j.rootLogger=INFO, stdout",
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
    ]
    lines += [f"log4j.logger.{name}=WARN" for name in QUIET_LOGGERS]
    return "\n".join(lines) + "\n"


def broker_command(
    *, jars_dir: Path, props_file: Path, log4j_file: Path, heap: str, log_dir: Path,
    version: str = KAFKA_VERSION,
) -> list[str]:
    """The JVM command line, equivalent to what bin/kafka-server-start.sh would run."""
    return [
        "java",
        *shlex.split(heap),
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        log_config_option(version, log4j_file),
        f"-Dkafka.logs.dir={log_dir}",
        "-cp",
        # The JVM expands the wildcard itself; no shell is involved.
        str(jars_dir / "*"),
        BROKER_MAIN,
        str(props_file),
    ]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:<port> now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The JVM binds with SO_REUSEADDR; mirror it so TIME_WAIT leftovers don't count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
        return True


