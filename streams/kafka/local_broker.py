"""A real single-node Apache Kafka broker on 127.0.0.1, without Docker.

The broker runs in KRaft mode (one JVM that is both broker and controller) from the jars of
the Kafka release in streams/kafka/broker_config.py, resolved once per machine from Maven
Central through ``streams/kafka/pom.xml``. Tests and the demo both use :class:`LocalBroker`, so
what the tests exercise is what the demo runs.

The JVM is started detached (its own session), so it outlives the Python process that started
it; ``stop()`` from any process finds it again through the pid file in ``data_dir``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

from streams.kafka.broker_config import (
    BROKER_MAIN,
    DEFAULT_HEAP,
    DEFAULT_PORT,
    HOST,
    KAFKA_VERSION,
    MAX_LOG_BYTES,
    BrokerError,
    broker_command,
    default_data_dir,
    default_jars_dir,
    free_port,
    log_config_name,
    port_is_free,
    render_log_config,
    render_server_properties,
)
from streams.kafka.broker_probe import pid_alive, pid_cmdline, probe, run_coro, tcp_open
from streams.kafka.broker_setup import ensure_jars, format_storage

log = logging.getLogger(__name__)

class BrokerStatus(NamedTuple):
    running: bool
    pid: int | None
    bootstrap: str
    log_file: Path
    data_dir: Path


class LocalBroker:
    """A single-node Kafka broker (KRaft, combined broker+controller) on 127.0.0.1.

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
        version: str = KAFKA_VERSION,
    ) -> None:
        self.port = port
        self.version = version  # a data_dir may later be started by a newer release (upgrade)
        # None: reuse the port stored in data_dir if still free, else pick a free one at start.
        self.controller_port = controller_port
        # Absolute: the pid check matches the broker's argv, which holds these paths.
        self.data_dir = (Path(data_dir) if data_dir else default_data_dir(port)).expanduser()
        self.data_dir = self.data_dir.absolute()
        jars = Path(jars_dir) if jars_dir else default_jars_dir(version=version)
        self.jars_dir = jars.expanduser().absolute()
        self.heap = heap
        self.overrides = dict(overrides or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_here = False

    def __repr__(self) -> str:
        return (
            f"LocalBroker(port={self.port}, controller_port={self.controller_port}, "
            f"data_dir={str(self.data_dir)!r}, version={self.version!r})"
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
        """The logging configuration of this broker version (log4j2 for 4.x)."""
        return self.data_dir / log_config_name(self.version)

    @property
    def kafka_log_dir(self) -> Path:
        return self.data_dir / "logs"

    # -- jars ------------------------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Fetch the broker's jars into ``jars_dir`` unless a complete copy is already there."""
        return ensure_jars(self.jars_dir, self.version)

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
        return pid_alive(pid)

    def _is_our_broker(self, pid: int) -> bool:
        if not self._alive(pid):
            return False
        argv = pid_cmdline(pid)
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
        return BrokerStatus(running=pid is not None, pid=pid, bootstrap=self.bootstrap_servers,
                            log_file=self.log_file, data_dir=self.data_dir)

    def ready(self, timeout: float = 3.0) -> bool:
        """Whether a broker answers client requests on ``bootstrap_servers`` now."""
        return tcp_open(self.port) and run_coro(probe(self.bootstrap_servers, timeout))

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
            format_storage(java, self.jars_dir, self.data_dir, self.props_file,
                           self.log4j_file, self.version)
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
        self.log4j_file.write_text(render_log_config(self.version))

    def _launch(self, java: str, deadline: float) -> None:
        if self.log_file.is_file() and self.log_file.stat().st_size > MAX_LOG_BYTES:
            self.log_file.replace(self.log_file.with_suffix(".log.1"))
        cmd = broker_command(jars_dir=self.jars_dir, props_file=self.props_file,
                             log4j_file=self.log4j_file, heap=self.heap,
                             log_dir=self.data_dir, version=self.version)
        cmd[0] = java
        with open(self.log_file, "ab") as out:
            offset = out.tell()
            out.write(f"==== streamrank: starting Kafka {self.version}: {shlex.join(cmd)}\n"
                      .encode())
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
            if tcp_open(self.port):
                remaining = max(deadline - time.monotonic(), 0.5)
                if run_coro(probe(self.bootstrap_servers, min(remaining, 5.0))):
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
            if not pid_alive(pid):
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
