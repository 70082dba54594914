"""The Faust application: tables, agents and HTTP views wired to state and scoring.

Agents are thin: decode (bad input → deadletter), call state or the SearchHandler, produce.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any, cast

import faust
from faust.web import Request, Response, View

from contracts import DecodeError, RankedResult
from scoring.serving import ScorerSlot
from state import CatalogStore, ImpressionStore, SequenceStore
from state.tables import IMPRESSION_TABLE, INTERACTION_TABLE, ITEM_STATS_TABLE, SEQUENCE_TABLE
from streams.kafka.connection import KafkaClients
from streams.kafka.deadletter import DeadLetters
from streams.settings import Settings
from streams.worker.action_gate import ActionGate, KafkaActionOffsets
from streams.worker.attribution import Attribution
from streams.worker.behaviour_state import BehaviourState
from streams.worker.broker_watch import BrokerWatch
from streams.worker.catalog_replica import CatalogReplica
from streams.worker.channels import Topics
from streams.worker.deadline import STALE, DeadlineAnswerer, DeadlinePolicy
from streams.worker.intake import Intake
from streams.worker.metrics import (
    CONTENT_TYPE,
    Snapshot,
    TopicSensor,
    WorkerMetrics,
    inference_stages,
)
from streams.worker.output import ResultPublisher
from streams.worker.rank_api import install as install_rank_api
from streams.worker.replica import local_stores
from streams.worker.sample_log import KafkaSampleLog, SampleLog
from streams.worker.scoring_service import ScoringService
from streams.worker.search import SearchHandler, now_ms

log = logging.getLogger(__name__)


def _key(event: Any) -> str | None:
    key = event.key
    return key.decode(errors="replace") if isinstance(key, bytes) else key


class StreamrankApp:
    def __init__(
        self, settings: Settings, slot: ScorerSlot, *, store: str = "rocksdb://",
        samples: SampleLog | None = None, clients: KafkaClients | None = None,
    ) -> None:
        self.settings = settings
        # Every Kafka client of the worker (Faust's too) connects with the same security.
        self.kafka = clients or KafkaClients(settings)
        self.app = faust.App(
            settings.app_id,
            broker=[f"kafka://{h.strip()}" for h in settings.bootstrap_servers.split(",")],
            broker_credentials=self.kafka.faust_credentials(),
            store=store,
            datadir=str(settings.state_dir),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            web_host=settings.web_host,
            web_port=settings.web_port,
            web_bind=settings.web_host,
            producer_acks=-1,
            consumer_auto_offset_reset="earliest",
            # Tables flush to RocksDB and the changelog together with each offset commit.
            broker_commit_interval=1.0,
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
            # Static membership: a restarted worker takes its partitions back at once.
            consumer_group_instance_id=settings.group_instance_id,
            # Deliberate, not Faust's 1,000,000 default: deadletter records up to
            # deadletter_max_bytes must fit (streams/kafka/deadletter.py cuts larger ones).
            producer_max_request_size=settings.producer_max_request_size,
        )
        self.metrics = WorkerMetrics(self._snapshot)
        self.sensor = TopicSensor(self.metrics)
        self.app.sensors.add(self.sensor)
        self._state_sizes: tuple[float, dict[str, int]] = (0.0, {})
        catalog_partitions = settings.catalog_partitions or settings.partitions
        self.topics = Topics.declare(
            self.app, settings.topics, settings.partitions, catalog_partitions,
            ticks=settings.ticks_topic,
        )
        self.sequence_table = self.app.Table(
            SEQUENCE_TABLE,
            key_type=str,
            value_type=bytes,  # raw: the state package owns the encoding
            partitions=settings.partitions,
            help="per-user rolling action sequence, newest first",
        )
        # Every worker needs every item's text, whatever partitions it owns: a replica of
        # the whole catalog topic in local state (streams/worker/catalog_replica.py says why not a
        # GlobalTable).
        items_kv, offsets_kv = self._catalog_stores(settings, store)
        self.impression_table = self.app.Table(
            IMPRESSION_TABLE,
            key_type=str,
            value_type=bytes,
            partitions=settings.partitions,
            help="per-user published rankings awaiting their attribution window, and when "
            "each partition's windows close",
        )
        self.sequences = SequenceStore(self.sequence_table, settings.sequence_length)
        self.catalog = CatalogStore(items_kv)
        self.impressions = ImpressionStore(
            self.impression_table,
            window_ms=round(settings.attribution_window_s * 1000),
            ttl_ms=round(settings.impression_ttl_s * 1000),
            max_per_user=settings.max_impressions_per_user,
        )
        offsets = KafkaActionOffsets(self.app, settings.topics.action, settings.app_id,
                                     self.kafka)
        self.attribution = Attribution(
            self.impressions,
            samples or KafkaSampleLog(
                self.kafka, settings.topics.samples,
                transactional_prefix=f"{settings.app_id}-samples",
                lookback_ms=round(settings.impression_ttl_s * 1000),
            ),
            ActionGate(offsets.end_offset, offsets.committed),
            ticks=self.topics.ticks,
            owned=self.owned_partitions,
            tick_s=settings.attribution_tick_s,
            resources=[offsets],
        )
        self.app.service(cast(Any, self.attribution))
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.slot = slot
        self.scoring = ScoringService(settings, slot, self.catalog_texts)
        # An instance is accepted too: it starts and stops with the worker.
        self.app.service(cast(Any, self.scoring))
        self.catalog_replica = CatalogReplica(
            self.catalog, offsets_kv, clients=self.kafka, topic=settings.topics.catalog,
            on_item=lambda item: self.scoring.item_changed(item.item_id, item.text()),
            max_bytes=settings.max_payload_bytes,
        )
        self.app.service(cast(Any, self.catalog_replica))
        # Interaction sets and item statistics: what behaviour features are built from.
        self.behaviour = BehaviourState(self.app, settings, self.topics, self.catalog,
                                        self.kafka, store=store)
        self.handler = SearchHandler(
            self.scoring.batcher, self.sequences, self.catalog,
            history_length=settings.history_length, behaviour=self.behaviour.source,
        )
        # Deadlines, load shedding, one answer per request_id (streams/worker/deadline.py).
        self.answering = DeadlineAnswerer(self.handler, self.scoring.batcher,
                                          DeadlinePolicy.from_settings(settings))
        self.scoring.batcher.on_batch = self.metrics.observe_batch
        self.deadletters = DeadLetters(
            self.topics.deadletter, on_send=lambda r: self.metrics.deadletters.labels(r).inc(),
            max_record_bytes=min(settings.deadletter_max_bytes,
                                 settings.producer_max_request_size),
        )
        self.intake = Intake(settings)
        self.results = ResultPublisher(
            self.topics.recommendations,
            on_retry=lambda: self.metrics.send_retries.labels("recommendations").inc(),
        )
        # /ready/ needs the cluster too; the watch also says an outage once, clearly.
        self.broker_watch = BrokerWatch(self.kafka, every_s=settings.readiness_probe_s)
        self.app.service(cast(Any, self.broker_watch))

        self.catalog_agent = self.app.agent(self.topics.catalog, name="catalog")(self._catalog)
        self.action_agent = self.app.agent(self.topics.action, name="actions")(self._actions)
        # Concurrent searches are what the micro-batcher merges into one inference run.
        self.search_agent = self.app.agent(
            self.topics.search, name="searches", concurrency=settings.search_concurrency
        )(self._searches)
        self.tick_agent = self.app.agent(self.topics.ticks, name="attribution-ticks")(
            self._ticks
        )
        self._add_views()
        self.rank_api = install_rank_api(self)  # POST /rank, GET /scoring/

    # Each agent yields once per event (its outcome, None for a deadletter): Faust's
    # test_context waits on those yields, and a sink can observe them.

    async def _catalog(self, stream: Any) -> AsyncIterator[str | None]:
        # Validation only: one worker per catalog partition sends bad records to the
        # deadletter once; every worker's CatalogReplica keeps the items themselves.
        async for event in stream.events():
            try:
                item = self.intake.item(event.key, event.value)
            except DecodeError as exc:
                await self.deadletters.send(event, exc)
                yield None
                continue
            # None: a Kafka tombstone on the compacted topic, under its item_id
            yield _key(event) if item is None else item.item_id

    @staticmethod
    def _catalog_stores(
        settings: Settings, store: str
    ) -> tuple[MutableMapping[str, bytes], MutableMapping[str, bytes]]:
        """(items, offsets) of the catalog replica: RocksDB beside the tables, or memory."""
        return local_stores(settings.state_dir, settings.app_id, "catalog", store)

    async def _actions(self, stream: Any) -> AsyncIterator[bool | None]:
        async for event in stream.events():
            message = event.message
            try:
                action = self.intake.action(event)
            except DecodeError as exc:
                await self.deadletters.send(event, exc)
                applied = None
            else:
                applied = self.sequences.append(action)
                self.attribution.on_action(action, message.partition)
                await self.behaviour.on_action(action, message.value, message.partition,
                                               message.offset)
            # Read: windows of this partition may close past it (streams/worker/action_gate.py).
            self.attribution.gate.processed(
                message.partition, message.offset, int(message.timestamp * 1000)
            )
            yield applied

    async def _searches(self, stream: Any) -> AsyncIterator[RankedResult | None]:
        async for event in stream.events():
            received = now_ms()
            started = time.perf_counter()
            try:
                search = self.intake.search(event)
            except DecodeError as exc:
                await self.deadletters.send(event, exc)
                yield None
                continue
            decoded = time.perf_counter()
            answer = await self.answering.answer(search, received, event.message.timestamp)
            if answer is None:  # its request_id was answered already: the first result stands
                yield None
                continue
            result = answer.result
            kept = time.perf_counter()
            # Kept before it is published: an action citing it then always finds it. Not a
            # search shed as stale: unscored, it teaches nothing, and its table writes are what
            # a worker catching up cannot afford (streams/worker/deadline.py).
            if answer.outcome.reason != STALE:
                self.attribution.on_search(search, result, answer.history,
                                           event.message.partition, answer.features,
                                           answer.feature_spec)
            state_s = answer.state_s + time.perf_counter() - kept
            sending = time.perf_counter()
            await self.results.publish(result)  # acknowledged before the next search
            done = time.perf_counter()
            if answer.outcome.degraded:
                self.metrics.degraded.labels(answer.outcome.reason or "unknown").inc()
            self.metrics.observe_stages({
                "decode": decoded - started, "state": state_s, "features": answer.behaviour_s,
                **inference_stages(answer.outcome.timings),
                "publish": done - sending, "end_to_end": done - started,
            })
            yield result

    async def _ticks(self, stream: Any) -> AsyncIterator[int]:
        # One tick per partition per interval (streams/worker/attribution.py): table writes for a
        # partition happen here, while one of its events is processed.
        async for event in stream.events():
            yield await self.attribution.on_tick(event.message.partition, event.value)

    def owned_partitions(self) -> list[int]:
        """Partitions of the user topics this worker is assigned now."""
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # consumer not started yet
            return []
        return sorted(tp.partition for tp in assigned if tp.topic == self.settings.ticks_topic)

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        revoked: set[Any] = args[0]  # Faust's on_partitions_revoked(sender, revoked)
        await self.attribution.release(
            {tp.partition for tp in revoked if tp.topic == self.settings.ticks_topic}
        )

    def catalog_texts(self) -> Iterator[tuple[str, str]]:
        """(item_id, model text) of the whole catalog, streamed: warms a newly loaded model (in
        the swap's thread, never on the event loop; scoring_service.py)."""
        for item_id in list(self.catalog.ids()):
            item = self.catalog.get(item_id)
            if item is not None:
                yield item_id, item.text()

    def ready(self) -> bool:
        app = self.app
        return bool(
            self.scoring.batcher.running  # a model is loaded and the batcher takes searches
            and self.catalog_replica.caught_up.is_set()  # the catalog as of the start is here
            and self.behaviour.replica.caught_up.is_set()  # and the item statistics
            and app.consumer.assignment()
            and not app.rebalancing
            and not app.in_recovery
            and cast(Any, app.tables).recovery.completed.is_set()
            and self.broker_watch.reachable  # the cluster answers: it can consume and produce
        )

    def _snapshot(self) -> Snapshot:
        """The live figures Prometheus reads at each scrape (see streams/worker/metrics.py)."""
        scorer = self.slot.current
        now = time.monotonic()
        # Counting keys walks the local RocksDB: at most every 30 s, however often scraped.
        if now - self._state_sizes[0] > 30.0:
            self._state_sizes = (now, {
                SEQUENCE_TABLE: len(self.sequence_table),
                IMPRESSION_TABLE: len(self.impression_table),
                INTERACTION_TABLE: len(self.behaviour.interaction_table),
                ITEM_STATS_TABLE: len(self.behaviour.item_stats_table),
                "item_stats": self.behaviour.replica.size(),
                "catalog": len(self.catalog),
            })
        try:
            consumer = self.app.consumer
            lag = self.sensor.lag(consumer.highwater, consumer.assignment())
        except Exception:  # consumer not started yet
            lag = {}
        return Snapshot(
            queue_depth=self.scoring.batcher.queue_depth,
            queue_peak=self.scoring.batcher.peak_queue_depth,
            model={"version": scorer.version, "scorer": scorer.name,
                   "provider": scorer.provider, "variant": scorer.variant_decision.variant,
                   "variant_basis": scorer.variant_decision.basis.value},
            state_entries=self._state_sizes[1],
            lag=lag,
            ready=self.ready(),
            model_swaps=self.slot.swaps,
            model_refusals=self.slot.refused,
            kafka_reachable=self.broker_watch.reachable,
        )

    def _add_views(self) -> None:
        outer = self

        @self.app.page("/metrics")
        class Metrics(View):
            async def get(self, request: Request) -> Response:
                return self.bytes(outer.metrics.render(), content_type=CONTENT_TYPE)

        @self.app.page("/health/")
        class Health(View):
            async def get(self, request: Request) -> Response:
                return self.json(
                    {
                        "status": "ok",
                        "model_version": outer.slot.current.version,
                        "scorer": outer.slot.current.name,
                        "provider": outer.slot.current.provider,
                        # Which variant serves and why (int8 is checked on this CPU at load).
                        "variant": outer.slot.current.variant_decision.as_dict(),
                        "batcher": outer.scoring.batcher.stats(),
                        "model_swaps": outer.slot.swaps,
                        "model_refusals": outer.slot.refused,
                        "deadletters": dict(outer.deadletters.counts),
                        "catalog_items": len(outer.catalog),
                        "attribution": dict(outer.attribution.counts),
                        "behaviour": dict(outer.behaviour.counts),
                        "deadletters_truncated": outer.deadletters.truncated,
                        "kafka": outer.broker_watch.status(),
                    }
                )

        @self.app.page("/live/")
        class Live(View):
            # Liveness: the process and its event loop answer. Never tied to Kafka or the
            # model: restarting a worker cannot bring a broker back (use /ready/ for traffic).
            async def get(self, request: Request) -> Response:
                return self.json({"live": True})

        @self.app.page("/ready/")
        class Ready(View):
            # Ready = partitions assigned, table recovery finished, not mid-rebalance.
            async def get(self, request: Request) -> Response:
                ready = outer.ready()
                return self.json({"ready": ready}, status=200 if ready else 503)

        @self.app.page("/users/{user_id}/sequence/")
        class UserSequenceView(View):
            # Local read: with several workers, ask the one that owns the user's partition.
            async def get(self, request: Request, user_id: str) -> Response:
                seq = outer.sequences.get(user_id)
                return self.json({"user_id": user_id, "entries": [e.__dict__ for e in seq.entries]})

        @self.app.page("/users/{user_id}/impressions/")
        class UserImpressionsView(View):
            # Open impressions (window not closed yet), newest first; local read as above.
            async def get(self, request: Request, user_id: str) -> Response:
                return self.json({"user_id": user_id, "open": [
                    {"request_id": i.request_id, "close_at": i.close_at, "labels": i.labels,
                     "items": [item for item, _ in i.items]}
                    for i in outer.impressions.open(user_id)]})
