"""`streamrank worker` as a child process: used by the demo and the integration tests.

Configured only through STREAMRANK_* variables, as a deployed worker is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from streams.kafka.broker_config import free_port
from streams.kafka.connection import KafkaClients


def connection_env(clients: KafkaClients) -> dict[str, str]:
    """The STREAMRANK_* variables that connect a worker the way `clients` connect: always
    the security protocol too, so one inherited from the parent's environment cannot apply
    to a different cluster (a local PLAINTEXT broker)."""
    settings = clients.settings
    env = {"STREAMRANK_BOOTSTRAP_SERVERS": clients.bootstrap_servers,
           "STREAMRANK_SECURITY_PROTOCOL": settings.security_protocol}
    if settings.security_protocol.startswith("SASL"):
        env["STREAMRANK_SASL_MECHANISM"] = settings.sasl_mechanism
        env["STREAMRANK_SASL_USERNAME"] = settings.sasl_username or ""
        if settings.sasl_password is not None:
            env["STREAMRANK_SASL_PASSWORD"] = settings.sasl_password.get_secret_value()
    files = {"STREAMRANK_SSL_CAFILE": settings.ssl_cafile,
             "STREAMRANK_SSL_CERTFILE": settings.ssl_certfile,
             "STREAMRANK_SSL_KEYFILE": settings.ssl_keyfile}
    env |= {name: str(path) for name, path in files.items() if path is not None}
    if settings.ssl_key_password is not None:
        env["STREAMRANK_SSL_KEY_PASSWORD"] = settings.ssl_key_password.get_secret_value()
    return env


def worker_env(
    kafka: KafkaClients | str,
    state_dir: Path,
    run_id: str,
    *,
    models_dir: Path,
    app_prefix: str = "run",
    partitions: int = 2,
) -> dict[str, str]:
    """Variables for a worker with its own consumer group, topics and state folder, connected
    as `kafka` connects (a bootstrap string: a PLAINTEXT broker, such as the local one)."""
    clients = kafka if isinstance(kafka, KafkaClients) else KafkaClients.plaintext(kafka)
    return {
        **connection_env(clients),
        "STREAMRANK_APP_ID": f"streamrank-{app_prefix}-{run_id}",
        "STREAMRANK_TOPIC_PREFIX": f"streamrank.{app_prefix}-{run_id}.",
        "STREAMRANK_STATE_DIR": str(state_dir),
        "STREAMRANK_WEB_PORT": str(free_port()),
        "STREAMRANK_MODELS_DIR": str(models_dir),
        "STREAMRANK_PARTITIONS": str(partitions),
    }


class WorkerProcess:
    """`streamrank worker` in a child process, configured only through STREAMRANK_* variables."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.web_port = int(env["STREAMRANK_WEB_PORT"])
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=2) as r:
            return orjson.loads(r.read())

    def metrics_text(self) -> str:
        """The worker's /metrics page (Prometheus text format)."""
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return str(r.read().decode())

    async def wait_for(
        self, check: Callable[[WorkerProcess], Any], what: str, timeout: float = 120.0
    ) -> Any:
        """Poll `check` until it returns something truthy; fail fast if the worker died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited ({self.proc.returncode}); see {self.log_path}")
            with contextlib.suppress(OSError, ValueError):
                value = check(self)
                if value:
                    return value
            await asyncio.sleep(0.25)
        raise TimeoutError(f"worker: no {what} after {timeout:.0f}s; see {self.log_path}")

    async def wait_ready(self, timeout: float = 120.0) -> None:
        """Until /ready/ says partitions are assigned and state is recovered."""

        def ready(w: WorkerProcess) -> bool:
            try:
                return bool(w.get("/ready/")["ready"])
            except urllib.error.HTTPError:
                return False  # 503 while not ready

        await self.wait_for(ready, "readiness", timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to flush or commit."""
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

