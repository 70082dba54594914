"""`POST /rank` on every worker: a SearchEvent in, its RankedResult out, within a deadline.

    curl -s -X POST 'http://worker:6066/rank?deadline_ms=100' \\
         -H 'Content-Type: application/json' --data @search.json

Any worker accepts the request; the worker that owns the user's partition answers it, because
the user's state is there and Faust tables are written only while a partition's events are
processed. So the accepting worker publishes the search to events.search keyed by user_id,
exactly as a site would, and awaits its RankedResult by request_id with the client library
(streams/client: one producer and one group-less consumer of every recommendations partition
per worker, shared by all requests). The answer is therefore the Kafka path's, with the same
impression, samples and recommendations record, and exactly one per request_id whichever way
it came: the owner answers a request_id once (streams/worker/repeats.py), a second request
for one in flight waits for the same result, and one answered recently (the last
`rank_remembered` results on the topic, whoever asked) is answered from its first result.

Past the deadline (`?deadline_ms=`, at most STREAMRANK_RANK_DEADLINE_MS) the worker answers in
the site's order, `degraded: true`, `degraded_reason: "timeout"`; the search still reaches its
owner, which answers it on the topic as usual. 400 with the reason for a search the Kafka path
would deadletter. `GET /scoring/` shows the deadlines, warm-up and rank counters.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any, Protocol, cast

import mode
import orjson
from faust.web import Request, Response, View

from contracts import DecodeError, RankedResult, SearchEvent, decode, encode
from scoring.serving import ScorerSlot
from streams.client import CLIENT_TIMEOUT, ClientFallback, RankingClient
from streams.kafka.connection import KafkaClients
from streams.settings import Settings
from streams.worker.deadline import TIMEOUT, DeadlineAnswerer, site_order
from streams.worker.intake import Intake
from streams.worker.scoring_service import ScoringService
from streams.worker.search import now_ms

log = logging.getLogger(__name__)

JSON = "application/json"
RESULT_FETCH_WAIT_MS = 5  # the consumer's longest wait at the broker: part of /rank's latency


class Worker(Protocol):
    """What the rank API needs of the worker (streams/worker/app.py's StreamrankApp)."""

    settings: Settings
    kafka: KafkaClients
    intake: Intake
    slot: ScorerSlot
    app: Any
    scoring: ScoringService
    answering: DeadlineAnswerer


class RankApi(mode.Service):
    def __init__(self, settings: Settings, clients: KafkaClients, intake: Intake,
                 slot: ScorerSlot, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline_ms = settings.rank_deadline_ms
        self.max_bytes = settings.max_payload_bytes
        self.intake = intake
        self.slot = slot
        self.client = RankingClient(
            clients, settings.topics, remember=settings.rank_remembered,
            fetch_max_wait_ms=RESULT_FETCH_WAIT_MS,
            # A request waits at most its deadline; entries outliving it are a leak, not a wait.
            keep_s=max(60.0, 10 * settings.rank_deadline_ms / 1000),
        )
        self.counts: Counter[str] = Counter()
        self._serving = False

    async def on_start(self) -> None:
        await self.client.start()
        self._serving = True

    async def on_stop(self) -> None:
        self._serving = False
        await self.client.stop()

    def deadline_s(self, asked_ms: str | None) -> float:
        """The request's deadline: what it asked for, at most the configured one."""
        try:
            asked = float(asked_ms) if asked_ms else math.inf
        except ValueError:
            asked = math.inf
        if not math.isfinite(asked) or asked <= 0:
            asked = math.inf
        return min(asked, self.deadline_ms) / 1000.0

    async def rank(self, body: bytes, asked_ms: str | None = None) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for one request."""
        try:
            search = decode(body, SearchEvent, self.max_bytes, context=self.intake.context())
        except DecodeError as exc:
            self.counts[f"refused_{exc.reason}"] += 1
            return 400, orjson.dumps({"error": exc.reason, "detail": exc.detail[:2000]})
        self.counts["requests"] += 1
        if not self._serving:
            result = self._fallback(search, "stopped")
        else:
            answer = await self.client.rank(search, self.deadline_s(asked_ms))
            if isinstance(answer, ClientFallback):
                reason = TIMEOUT if answer.reason == CLIENT_TIMEOUT else answer.reason
                result = self._fallback(search, reason)
            else:
                result = answer
        self.counts["degraded" if result.degraded else "ranked"] += 1
        return 200, encode(result)

    def _fallback(self, search: SearchEvent, reason: str) -> RankedResult:
        now = now_ms()
        return site_order(search, reason, now, self.slot.current.version, now)

    def stats(self) -> dict[str, int]:
        return {**self.counts, **self.client.stats(), "remembered": len(self.client.recent)}


def install(worker: Worker) -> RankApi:
    """Start the rank API with the worker and register its views."""
    api = RankApi(worker.settings, worker.kafka, worker.intake, worker.slot)
    worker.app.service(cast(Any, api))

    @worker.app.page("/rank")
    class Rank(View):
        async def post(self, request: Request) -> Response:
            body = await self.read_request_content(request)
            status, value = await api.rank(body, request.query.get("deadline_ms"))
            return self.bytes(value, content_type=JSON, status=status)

    @worker.app.page("/scoring/")
    class Scoring(View):
        # Deadlines and shedding, warm-up progress, the scorer's pace, the rank API.
        async def get(self, request: Request) -> Response:
            batcher = worker.scoring.batcher
            return self.json({
                "answers": dict(worker.answering.counts),
                "repeats_remembered": len(worker.answering.repeats),
                "warm": worker.scoring.status(),
                "batcher": {"pairs_per_s": round(batcher.pairs_per_s or 0.0, 1),
                            "queue_depth": batcher.queue_depth,
                            "degraded": dict(batcher.degraded)},
                "rank": api.stats(),
            })

    return api


__all__ = ["RankApi", "install"]
