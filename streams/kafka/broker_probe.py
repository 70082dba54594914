"""Process and client probes the local broker needs: pid checks, a metadata probe."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from streams.kafka.broker_config import HOST, NODE_ID

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def pid_alive(pid: int) -> bool:
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


def pid_cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid``, or None where /proc is not available (macOS)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return [] if Path("/proc/self").exists() else None
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def run_coro(coro: Coroutine[Any, Any, _T]) -> _T:
    """asyncio.run, also from code that already runs inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # asyncio.run refuses to nest; a short-lived thread gets its own loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def probe(bootstrap: str, timeout_s: float) -> bool:
    """Whether the broker answers a metadata request and lists itself as a live broker."""
    from streams.kafka.connection import KafkaClients  # aiokafka: loaded only when probing

    ms = max(int(timeout_s * 1000), 500)
    # The local broker's own listener is PLAINTEXT (broker_config.py).
    admin = KafkaClients.plaintext(bootstrap).admin(request_timeout_ms=ms)
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


def tcp_open(port: int) -> bool:
    # A cheap pre-check: aiokafka logs connection failures at ERROR level, which is noise
    # during the seconds the JVM takes to bind.
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


