"""A real single-node Apache Kafka broker on 127.0.0.1, without Docker.

The broker runs in KRaft mode (one JVM that is both broker and controller) from the jars of
Kafka 3.9.1, resolved once per machine from Maven Central through ``streams/kafka/pom.xml``.
Tests and the demo both use :class:`LocalBroker`, so what the tests exercise is what the demo runs.

The JVM is started detached (its own session), so it outlives the Python process that started
it; ``stop()`` from any process finds it again through the pid file in ``data_dir``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import errno
import fcntl
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar

log = logging.getLogger(__name__)

KAFKA_VERSION = "3.9.1"
HOST = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_HEAP = "-Xms256m -Xmx512m"
NODE_ID = 1
POM_PATH = Path(__file__).resolve().parent / "kafka" / "pom.xml"
# The jar whose presence tells a finished fetch from an empty or foreign directory.
CORE_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
BROKER_MAIN = "kafka.Kafka"
# Rotate broker.log at start beyond this size, so a long-lived data_dir does not grow unbounded.
MAX_LOG_BYTES = 16 * 1024 * 1024

_T = TypeVar("_T")


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped."""


class BrokerStatus(NamedTuple):
    running: bool
    pid: int | None
    bootstrap: str
    log_file: Path
    data_dir: Path


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


def default_jars_dir(env: Mapping[str, str] | None = None) -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/streamrank/kafka-3.9.1/libs``."""
    base = _xdg_dir("XDG_CACHE_HOME", ".cache", os.environ if env is None else env)
    return base / "streamrank" / f"kafka-{KAFKA_VERSION}" / "libs"


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
    lines = ["# Written by streams/broker.py; rewritten at every start."]
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


def render_log4j_properties() -> str:
    """log4j 1.x (reload4j) config: INFO to stdout, which ``start`` redirects to broker.log."""
    return (
        "log4j.rootLogger=INFO, stdout\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        # Per-request, per-partition-state and cleaner chatter drowns the useful lines.
        "log4j.logger.kafka.request.logger=WARN\n"
        "log4j.logger.state.change.logger=WARN\n"
        "log4j.logger.kafka.log.LogCleaner=WARN\n"
        "log4j.logger.kafka.authorizer.logger=WARN\n"
        "log4j.logger.org.apache.kafka.storage.internals.log=WARN\n"
        "log4j.logger.kafka.log=WARN\n"
        "log4j.logger.org.apache.kafka.clients=WARN\n"
        # The full config dump (300+ lines per start); server.properties sits next to the log.
        "log4j.logger.kafka.server.KafkaConfig=WARN\n"
        "log4j.logger.org.apache.kafka.common.config.AbstractConfig=WARN\n"
        # One "Starting" line per background thread.
        "log4j.logger.kafka.server.DelayedOperationPurgatory$ExpiredOperationReaper=WARN\n"
        "log4j.logger.kafka.server.ClientQuotaManager$ThrottledChannelReaper=WARN\n"
        "log4j.logger.kafka.server.NodeToControllerRequestThread=WARN\n"
    )


def broker_command(
    *, jars_dir: Path, props_file: Path, log4j_file: Path, heap: str, log_dir: Path
) -> list[str]:
    """The JVM command line, equivalent to what bin/kafka-server-start.sh would run."""
    return [
        "java",
        *shlex.split(heap),
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j_file}",
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


# --------------------------------------------------------------------------------------------
# Process helpers.


def _pid_alive(pid: int) -> bool:
    # A dead child of ours is a zombie that os.kill(pid, 0) still reports as alive. WNOWAIT
    # looks without reaping, so the Popen that owns it still gets its exit status.
    with contextlib.suppress(ChildProcessError):
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # A zombie of some other parent: dead for our purposes.
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _pid_cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid``, or None where /proc is not available (macOS)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return [] if Path("/proc/self").exists() else None
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _run_coro(coro: Coroutine[Any, Any, _T]) -> _T:
    """asyncio.run, also from code that already runs inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # asyncio.run refuses to nest; a short-lived thread gets its own loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _probe(bootstrap: str, timeout_s: float) -> bool:
    """Whether the broker answers a metadata request and lists itself as a live broker."""
    from aiokafka.admin import AIOKafkaAdminClient

    ms = max(int(timeout_s * 1000), 500)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ms)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    except Exception as exc:
        log.debug("broker at %s not answering yet: %r", bootstrap, exc)
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    brokers: list[dict[str, Any]] = cluster.get("brokers") or []
    return any(b.get("node_id") == NODE_ID for b in brokers)


def _tcp_open(port: int) -> bool:
    # A cheap pre-check: aiokafka logs connection failures at ERROR level, which is noise
    # during the seconds the JVM takes to bind.
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------


class LocalBroker:
    """A single-node Kafka 3.9.1 broker (KRaft, combined broker+controller) on 127.0.0.1.

    ``with LocalBroker(port) as broker:`` starts it and, on exit, stops it only if this
    object started it (an already-running broker shared by the demo is left alone).
    """

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        *,
        controller_port: int | None = None,
        data_dir: Path | str | None = None,
        jars_dir: Path | str | None = None,
        heap: str = DEFAULT_HEAP,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port
        # None: reuse the port stored in data_dir if still free, else pick a free one at start.
        self.controller_port = controller_port
        # Absolute: the pid check matches the broker's argv, which holds these paths.
        self.data_dir = (Path(data_dir) if data_dir else default_data_dir(port)).expanduser()
        self.data_dir = self.data_dir.absolute()
        self.jars_dir = (Path(jars_dir) if jars_dir else default_jars_dir()).expanduser()
        self.jars_dir = self.jars_dir.absolute()
        self.heap = heap
        self.overrides = dict(overrides or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_here = False

    def __repr__(self) -> str:
        return (
            f"LocalBroker(port={self.port}, controller_port={self.controller_port}, "
            f"data_dir={str(self.data_dir)!r})"
        )

    # -- paths ------------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def props_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.data_dir / "log4j.properties"

    @property
    def kafka_log_dir(self) -> Path:
        return self.data_dir / "logs"

    # -- jars -------------------------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Fetch the broker's jars into ``jars_dir`` unless a complete copy is already there."""
        if (self.jars_dir / CORE_JAR).is_file():
            return self.jars_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                f"Kafka jars are not in {self.jars_dir} and Maven (`mvn`) is not on PATH to fetch "
                "them; install Maven (e.g. `apt-get install maven`) or pass jars_dir= a directory "
                f"holding the Kafka {KAFKA_VERSION} jars"
            )
        if not POM_PATH.is_file():
            raise BrokerError(f"{POM_PATH} is missing; the package is incomplete")
        parent = self.jars_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        # Fetch into a sibling temp dir and rename: a fetch that is interrupted never leaves a
        # directory that looks complete, and two concurrent fetches cannot mix their files.
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.jars_dir.name}-", dir=parent))
        log.info(
            "fetching Kafka %s jars from Maven Central into %s (once per machine)",
            KAFKA_VERSION,
            self.jars_dir,
        )
        started = time.monotonic()
        try:
            cmd = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM_PATH),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                tail = (result.stdout + result.stderr)[-4000:]
                raise BrokerError(f"`{shlex.join(cmd)}` failed ({result.returncode}):\n{tail}")
            if not (tmp / CORE_JAR).is_file():
                raise BrokerError(f"Maven finished but {CORE_JAR} is not among the fetched jars")
            try:
                tmp.rename(self.jars_dir)
            except OSError as exc:
                # Another process finished first; its copy is as good as ours.
                if not (self.jars_dir / CORE_JAR).is_file():
                    raise BrokerError(
                        f"{self.jars_dir} exists but holds no {CORE_JAR}; remove it and retry"
                    ) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info(
            "fetched %d jars in %.1f s",
            len(list(self.jars_dir.glob("*.jar"))),
            time.monotonic() - started,
        )
        return self.jars_dir

    # -- state ------------------------------------------------------------------------------

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            # Our own child: Popen reaps it and keeps its exit code.
            return self._proc.poll() is None
        return _pid_alive(pid)

    def _is_our_broker(self, pid: int) -> bool:
        if not self._alive(pid):
            return False
        argv = _pid_cmdline(pid)
        if argv is None:
            return True  # no /proc: trust the pid file
        # Guards against pid reuse: the pid must be a broker started on this data_dir.
        return BROKER_MAIN in argv and str(self.props_file) in argv

    def _running_pid(self) -> int | None:
        pid = self._read_pid()
        if pid is not None and self._is_our_broker(pid):
            return pid
        return None

    def status(self) -> BrokerStatus:
        pid = self._running_pid()
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=self.bootstrap_servers,
            log_file=self.log_file,
            data_dir=self.data_dir,
        )

    def ready(self, timeout: float = 3.0) -> bool:
        """Whether a broker answers client requests on ``bootstrap_servers`` now."""
        return _tcp_open(self.port) and _run_coro(_probe(self.bootstrap_servers, timeout))

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # Serialises start/stop of one data_dir across processes (e.g. two test workers).
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _cluster_id(self) -> str:
        id_file = self.data_dir / "cluster.id"
        if id_file.is_file():
            return id_file.read_text().strip()
        meta = self.kafka_log_dir / "meta.properties"
        cid = None
        if meta.is_file():
            # Formatted storage whose id file was lost: the storage's id is the one that counts.
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    cid = line.split("=", 1)[1].strip()
        cid = cid or generate_cluster_id()
        id_file.write_text(cid + "\n")
        return cid

    def _configured_port(self) -> int | None:
        """The PLAINTEXT port in the server.properties the running broker was started with."""
        prefix = f"advertised.listeners=PLAINTEXT://{HOST}:"
        with contextlib.suppress(OSError, ValueError):
            for line in self.props_file.read_text().splitlines():
                if line.startswith(prefix):
                    return int(line[len(prefix) :].split(",")[0])
        return None

    def _choose_controller_port(self) -> int:
        if self.controller_port is not None:
            return self.controller_port
        stored = self.data_dir / "controller.port"
        with contextlib.suppress(FileNotFoundError, ValueError):
            # Keep the same port across restarts when possible: stable config, readable logs.
            previous = int(stored.read_text().strip())
            if previous != self.port and port_is_free(previous):
                return previous
        while (cport := free_port()) == self.port:
            pass
        stored.write_text(f"{cport}\n")
        return cport

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> Self:
        """Start the broker and return once it answers a client; a no-op if it already runs."""
        deadline = time.monotonic() + timeout
        with self._lock():
            pid = self._running_pid()
            if pid is not None:
                log.info("broker of %s already running (pid %d)", self.data_dir, pid)
                running_port = self._configured_port()
                if running_port not in (None, self.port):
                    raise BrokerError(
                        f"the broker of {self.data_dir} already runs on port {running_port}, "
                        f"not {self.port}; stop it first"
                    )
                self._wait_ready(pid, deadline, log_offset=0)
                return self
            self.pid_file.unlink(missing_ok=True)
            if self._proc is not None:
                # A broker we launched and someone else stopped: collect its exit status.
                self._proc.poll()
                self._proc = None
            java = shutil.which("java")
            if java is None:
                raise BrokerError(
                    "`java` is not on PATH; Kafka needs a Java 11+ runtime "
                    "(e.g. `apt-get install openjdk-17-jre-headless`)"
                )
            if not port_is_free(self.port):
                raise BrokerError(
                    f"port {self.port} on {HOST} is already in use by another process "
                    f"(not the broker of {self.data_dir}); stop it or choose another port "
                    f"(`ss -ltnp 'sport = :{self.port}'` shows who holds it)"
                )
            self.ensure_jars()
            cport = self._choose_controller_port()
            if not port_is_free(cport):
                raise BrokerError(f"controller port {cport} on {HOST} is already in use")
            self._write_config(cport)
            self._format_storage(java)
            self._launch(java, deadline)
        return self

    def _write_config(self, cport: int) -> None:
        self.kafka_log_dir.mkdir(parents=True, exist_ok=True)
        self.props_file.write_text(
            render_server_properties(
                port=self.port,
                controller_port=cport,
                log_dir=self.kafka_log_dir,
                overrides=self.overrides,
            )
        )
        self.log4j_file.write_text(render_log4j_properties())

    def _format_storage(self, java: str) -> None:
        if (self.kafka_log_dir / "meta.properties").is_file():
            return  # formatted before; skipping saves a JVM start
        cid = self._cluster_id()
        log.info("formatting KRaft storage in %s (cluster id %s)", self.kafka_log_dir, cid)
        cmd = [
            java,
            f"-Dlog4j.configuration=file:{self.log4j_file}",
            "-cp",
            str(self.jars_dir / "*"),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cid,
            "-c",
            str(self.props_file),
            "--ignore-formatted",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(
                f"formatting storage failed ({result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )

    def _launch(self, java: str, deadline: float) -> None:
        if self.log_file.is_file() and self.log_file.stat().st_size > MAX_LOG_BYTES:
            self.log_file.replace(self.log_file.with_suffix(".log.1"))
        cmd = broker_command(
            jars_dir=self.jars_dir,
            props_file=self.props_file,
            log4j_file=self.log4j_file,
            heap=self.heap,
            log_dir=self.data_dir,
        )
        cmd[0] = java
        with open(self.log_file, "ab") as out:
            offset = out.tell()
            out.write(f"==== streamrank: starting {shlex.join(cmd)}\n".encode())
            out.flush()
            # A new session: the broker survives the caller's exit and its Ctrl-C.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        pid = self._proc.pid
        self.pid_file.write_text(f"{pid}\n")
        log.info("started Kafka broker pid %d on %s", pid, self.bootstrap_servers)
        try:
            self._wait_ready(pid, deadline, log_offset=offset)
        except BaseException:
            # Never leave a half-started JVM behind (also on KeyboardInterrupt).
            self._stop_pid(pid, timeout=10)
            self.pid_file.unlink(missing_ok=True)
            raise
        self._started_here = True

    def _wait_ready(self, pid: int, deadline: float, *, log_offset: int) -> None:
        started = time.monotonic()
        while True:
            if not self._alive(pid):
                code = self._proc.returncode if self._proc and self._proc.pid == pid else None
                raise BrokerError(
                    f"Kafka broker exited during startup (exit code {code}); "
                    f"log {self.log_file}:\n{self._log_tail(log_offset)}"
                )
            if _tcp_open(self.port):
                remaining = max(deadline - time.monotonic(), 0.5)
                if _run_coro(_probe(self.bootstrap_servers, min(remaining, 5.0))):
                    log.info(
                        "Kafka broker ready on %s after %.1f s",
                        self.bootstrap_servers,
                        time.monotonic() - started,
                    )
                    return
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"Kafka broker (pid {pid}) did not answer on {self.bootstrap_servers} in "
                    f"time; log {self.log_file}:\n{self._log_tail(log_offset)}"
                )
            time.sleep(0.2)

    def _log_tail(self, offset: int, lines: int = 40) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the broker, SIGKILL it after ``timeout``; a no-op if it is not running."""
        with self._lock():
            pid = self._running_pid()
            if pid is not None:
                self._stop_pid(pid, timeout)
            self.pid_file.unlink(missing_ok=True)
            self._started_here = False

    def _stop_pid(self, pid: int, timeout: float) -> None:
        log.info("stopping Kafka broker pid %d", pid)
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # Kafka shuts down cleanly on SIGTERM
        if not self._wait_exit(pid, timeout):
            log.warning("broker pid %d ignored SIGTERM for %.0f s; killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                # The whole session: nothing the JVM might have spawned should survive it.
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 10):
                raise BrokerError(f"broker pid {pid} survived SIGKILL")
        log.info("broker stopped in %.1f s", time.monotonic() - started)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.pid == pid:
                # Our own child: reap it through Popen so it leaves no zombie.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=max(deadline - time.monotonic(), 0))
                    self._proc = None
                    return True
                return False
            if not _pid_alive(pid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def wipe(self) -> None:
        """Stop the broker and delete its data_dir (topics, offsets, logs, cluster id)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._started_here:
            self.stop()


@contextlib.contextmanager
def broker_for_session(port: int, scratch: Path) -> Iterator[LocalBroker]:
    """The local broker already running on `port` (left running afterwards), or a throwaway
    one whose data lives in `scratch` and which is stopped at the end: for demos and benches."""
    broker = LocalBroker(port=port)
    if broker.status().running:
        yield broker
        return
    broker = LocalBroker(port=port, data_dir=scratch / "kafka")
    log.info("starting a throwaway Kafka %s on %s", KAFKA_VERSION, broker.bootstrap_servers)
    with broker:
        yield broker
