"""Whether the worker can reach Kafka now: what /ready/ needs besides its own state.

Faust keeps its assignment while the broker is away, so "partitions assigned" alone stayed
true through a 20 s outage. A metadata request every `readiness_probe_s` (its own small admin
client from the connection factory) says whether the cluster answers; the worker is
unreachable once no probe succeeded for twice the interval plus the probe's timeout. The
outage is logged once, clearly, with what the worker does about it, then summarised every
`summary_s`; the client libraries' own repeated errors are limited meanwhile (log_limits.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import mode

from streams.kafka.connection import KafkaClients
from streams.worker.log_limits import RepeatLimiter, install

if TYPE_CHECKING:
    from streams.kafka.connection import Admin

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0


class BrokerWatch(mode.Service):
    def __init__(
        self, clients: KafkaClients, *, every_s: float = 1.0, summary_s: float = 30.0,
        limiter: RepeatLimiter | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.clients = clients
        self.every_s = every_s
        self.summary_s = summary_s
        self.limiter = limiter or RepeatLimiter(every_s=summary_s)
        self.last_ok: float | None = None  # monotonic time of the last answered probe
        self.down_since: float | None = None
        self.outages = 0
        self._admin: Admin | None = None
        self._last_summary = 0.0

    @property
    def reachable(self) -> bool:
        if self.last_ok is None:
            return False
        return time.monotonic() - self.last_ok <= 2 * self.every_s + PROBE_TIMEOUT_S

    def status(self) -> dict[str, Any]:
        """For /health/: reachable now, for how long it has not been, outages so far."""
        down = None if self.down_since is None else round(time.monotonic() - self.down_since, 1)
        return {"reachable": self.reachable, "down_s": down, "outages": self.outages,
                "bootstrap": self.clients.bootstrap_servers}

    async def on_start(self) -> None:
        install(self.limiter)  # the libraries' loggers exist by now

    async def on_stop(self) -> None:
        await self._close()

    async def _close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    async def probe(self) -> bool:
        """One metadata request; False on any failure (the client is rebuilt next time)."""
        try:
            if self._admin is None:
                admin = self.clients.admin(request_timeout_ms=round(PROBE_TIMEOUT_S * 1000))
                await asyncio.wait_for(admin.start(), PROBE_TIMEOUT_S)
                self._admin = admin
            await asyncio.wait_for(self._admin.describe_cluster(), PROBE_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("broker probe failed: %r", exc)
            await self._close()
            return False
        return True

    @mode.Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            ok = await self.probe()
            now = time.monotonic()
            if ok:
                self.last_ok = now
                if self.down_since is not None:
                    log.warning(
                        "Kafka at %s answers again after %.1f s unreachable; consuming and "
                        "producing resume where they stopped (%d repeated client-library log "
                        "lines were suppressed)", self.clients.bootstrap_servers,
                        now - self.down_since, self.limiter.take_dropped())
                    self.down_since = None
            elif not self.reachable and self.down_since is None:
                self.down_since = self._last_summary = now
                self.outages += 1
                log.error(
                    "Kafka at %s is unreachable: /ready/ answers 503, searches and actions "
                    "wait in Kafka (nothing is lost: offsets are committed only after their "
                    "results are acknowledged), the worker keeps its state and reconnects by "
                    "itself; repeated connection errors are summarised every %.0f s",
                    self.clients.bootstrap_servers, self.summary_s)
            elif self.down_since is not None and now - self._last_summary >= self.summary_s:
                self._last_summary = now
                log.error("Kafka at %s still unreachable after %.0f s; %d repeated "
                          "client-library log lines suppressed meanwhile",
                          self.clients.bootstrap_servers, now - self.down_since,
                          self.limiter.take_dropped())
            await self.sleep(self.every_s)
