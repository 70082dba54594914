"""Prometheus metrics of a worker, served at /metrics on its web port.

Counters that Faust already has a hook for come through a Faust Sensor (events in per topic,
sends out per topic, send errors, rebalances); the rest is recorded by the code that knows it
(stage latencies by the search agent, batch sizes by a MicroBatcher hook) or read when
Prometheus scrapes (queue depth, model, state sizes, consumer lag), so a scrape always sees
the present. One registry per worker app: several apps in one test process do not collide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

# aiohttp takes the charset separately; Prometheus reads text/plain as its text format.
CONTENT_TYPE = "text/plain"
# Seconds, from sub-millisecond (decode, state) to past the default 1 s scoring timeout.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# streamrank_model_info labels; variant_basis says why that variant serves (passed, failed, ...).
MODEL_LABELS = ("version", "scorer", "provider", "variant", "variant_basis")
STAGES = ("decode", "state", "queue", "tokenize", "inference", "publish", "end_to_end")


@dataclass
class Snapshot:
    """What is read from the live worker at scrape time."""

    queue_depth: int = 0
    queue_peak: int = 0
    # version, scorer, provider, variant, variant_basis (why that variant: scoring/variants.py)
    model: Mapping[str, str] = field(default_factory=dict)
    state_entries: Mapping[str, int] = field(default_factory=dict)  # table -> local keys
    lag: Mapping[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> lag
    ready: bool = False
    model_swaps: int = 0
    model_refusals: int = 0
    kafka_reachable: bool = False


class WorkerMetrics:
    """Every metric of one worker, on its own registry."""

    def __init__(self, snapshot: Callable[[], Snapshot] | None = None) -> None:
        self.registry = CollectorRegistry()
        self._snapshot = snapshot
        r = self.registry
        self.events_in = Counter("streamrank_events_in", "records read, by topic",
                                 ["topic"], registry=r)
        self.events_out = Counter("streamrank_events_out", "records sent (acknowledged), by topic",
                                  ["topic"], registry=r)
        self.send_errors = Counter("streamrank_send_errors", "sends that failed, by topic",
                                   ["topic"], registry=r)
        self.deadletters = Counter("streamrank_deadletters", "records dead-lettered, by reason",
                                   ["reason"], registry=r)
        self.send_retries = Counter("streamrank_send_retries",
                                    "sends retried after a failure (broker away), by topic",
                                    ["topic"], registry=r)
        self.kafka_reachable = Gauge("streamrank_kafka_reachable",
                                     "1 while the cluster answers the worker's probe",
                                     registry=r)
        self.degraded = Counter("streamrank_degraded_answers",
                                "searches answered in original order, by reason",
                                ["reason"], registry=r)
        self.rebalances = Counter("streamrank_rebalances", "consumer group rebalances",
                                  registry=r)
        self.stage = Histogram("streamrank_stage_seconds", "latency of one search, by stage",
                               ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_searches = Histogram(
            "streamrank_batch_searches", "searches merged into one scorer run",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_pairs = Histogram(
            "streamrank_batch_pairs", "candidate pairs in one scorer run",
            buckets=(10, 50, 100, 250, 500, 1000, 2500, 5000), registry=r)
        self.queue_depth = Gauge("streamrank_queue_depth", "searches waiting for the scorer",
                                 registry=r)
        self.queue_peak = Gauge("streamrank_queue_depth_peak",
                                "most searches ever waiting at once since start", registry=r)
        self.model_info = Gauge("streamrank_model_info", "the model serving now (value 1)",
                                MODEL_LABELS, registry=r)
        self.model_swaps = Gauge("streamrank_model_swaps", "model versions swapped in",
                                 registry=r)
        self.model_refusals = Gauge("streamrank_model_refusals", "model versions refused",
                                    registry=r)
        self.state_entries = Gauge("streamrank_state_entries",
                                   "keys in this worker's local state, by table", ["table"],
                                   registry=r)
        self.consumer_lag = Gauge("streamrank_consumer_lag",
                                  "records not yet read, by topic partition",
                                  ["topic", "partition"], registry=r)
        self.ready = Gauge("streamrank_ready", "1 when partitions are assigned and recovered",
                           registry=r)

    def observe_stages(self, seconds: Mapping[str, float]) -> None:
        for stage, value in seconds.items():
            self.stage.labels(stage).observe(max(0.0, value))

    def observe_batch(self, searches: int, pairs: int) -> None:
        self.batch_searches.observe(searches)
        self.batch_pairs.observe(pairs)

    def refresh(self) -> None:
        """Read the live worker into the gauges (at scrape time)."""
        if self._snapshot is None:
            return
        snap = self._snapshot()
        self.queue_depth.set(snap.queue_depth)
        self.queue_peak.set(snap.queue_peak)
        self.model_info.clear()
        if snap.model:
            self.model_info.labels(*(snap.model.get(k, "") for k in MODEL_LABELS)).set(1)
        self.model_swaps.set(snap.model_swaps)
        self.model_refusals.set(snap.model_refusals)
        for table, count in snap.state_entries.items():
            self.state_entries.labels(table).set(count)
        self.consumer_lag.clear()  # partitions move between workers: drop the ones gone
        for (topic, partition), lag in snap.lag.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)
        self.ready.set(1 if snap.ready else 0)
        self.kafka_reachable.set(1 if snap.kafka_reachable else 0)

    def render(self) -> bytes:
        self.refresh()
        return generate_latest(self.registry)


def inference_stages(timings: Mapping[str, float]) -> dict[str, float]:
    """Batcher timings → metric stages: queue and tokenize as they are; the scorer's model
    stages (encode, head, inference, cross...) summed as "inference"."""
    out = {k: v for k, v in timings.items() if k in ("queue", "tokenize")}
    model = [v for k, v in timings.items() if k not in ("queue", "tokenize", "score")]
    if model:
        out["inference"] = sum(model)
    return out


class TopicSensor(faust.Sensor):
    """Faust's own hooks → records in and out per topic, send errors, rebalances; and the
    last offset read per partition (for consumer lag)."""

    def __init__(self, metrics: WorkerMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.positions: dict[tuple[str, int], int] = {}

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self.metrics.events_in.labels(tp.topic).inc()
        self.positions[(tp.topic, tp.partition)] = offset + 1

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int,
                          valsize: int) -> Any:
        return topic

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        self.metrics.events_out.labels(str(state)).inc()

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        self.metrics.send_errors.labels(str(state)).inc()

    def on_rebalance_start(self, app: Any) -> dict[str, Any]:
        self.metrics.rebalances.inc()
        return {}

    def lag(self, highwater: Callable[[Any], int | None], assigned: Iterable[Any]
            ) -> dict[tuple[str, int], int]:
        """(topic, partition) → highwater - next offset to read, for the assigned ones."""
        out = {}
        for tp in assigned:
            key = (tp.topic, tp.partition)
            high = highwater(tp)
            # Unknown until a record of that partition was read (its position is ours only).
            if high is not None and key in self.positions:
                out[key] = max(0, high - self.positions[key])
        return out
