"""Worker metrics: names and labels Prometheus scrapes, and what the gauges read live."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from streams.worker.metrics import Snapshot, TopicSensor, WorkerMetrics, inference_stages


def samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_histograms_and_live_gauges() -> None:
    snap = Snapshot(queue_depth=3, model={"version": "embed-1", "scorer": "embed",
                                          "provider": "CPUExecutionProvider", "variant": "int8",
                                          "variant_basis": "passed"},
                    state_entries={"user-sequences": 5}, lag={("t.events.search", 1): 7},
                    ready=True, model_swaps=2)
    m = WorkerMetrics(lambda: snap)
    m.deadletters.labels("not_json").inc()
    m.observe_stages({"decode": 0.0002, "end_to_end": 0.02})
    m.observe_batch(4, 200)
    got = samples(m)
    assert got[("streamrank_deadletters_total", (("reason", "not_json"),))] == 1
    assert got[("streamrank_stage_seconds_count", (("stage", "decode"),))] == 1
    assert got[("streamrank_batch_searches_sum", ())] == 4
    assert got[("streamrank_batch_pairs_sum", ())] == 200
    assert got[("streamrank_queue_depth", ())] == 3
    info = (("provider", "CPUExecutionProvider"), ("scorer", "embed"), ("variant", "int8"),
            ("variant_basis", "passed"), ("version", "embed-1"))
    assert got[("streamrank_model_info", info)] == 1
    assert got[("streamrank_state_entries", (("table", "user-sequences"),))] == 5
    assert got[("streamrank_consumer_lag", (("partition", "1"), ("topic", "t.events.search")))] == 7
    assert got[("streamrank_ready", ())] == 1
    assert got[("streamrank_model_swaps", ())] == 2


def test_a_swapped_model_replaces_the_info_series() -> None:
    model = {"version": "a", "scorer": "embed", "provider": "cpu", "variant": "fp32"}
    m = WorkerMetrics(lambda: Snapshot(model=dict(model)))
    samples(m)
    model["version"] = "b"
    versions = [dict(k[1])["version"] for k in samples(m) if k[0] == "streamrank_model_info"]
    assert versions == ["b"]


def test_sensor_counts_topics_and_lag() -> None:
    m = WorkerMetrics()
    sensor = TopicSensor(m)
    tp = SimpleNamespace(topic="t.events.search", partition=0)
    other = SimpleNamespace(topic="t.events.search", partition=1)
    sensor.on_message_in(tp, 41, None)
    state = sensor.on_send_initiated(None, "t.recommendations", None, 1, 2)
    sensor.on_send_completed(None, state, None)
    sensor.on_send_error(None, RuntimeError(), sensor.on_send_initiated(None, "t.x", None, 1, 1))
    got = samples(m)
    assert got[("streamrank_events_in_total", (("topic", "t.events.search"),))] == 1
    assert got[("streamrank_events_out_total", (("topic", "t.recommendations"),))] == 1
    assert got[("streamrank_send_errors_total", (("topic", "t.x"),))] == 1
    highwater = {0: 50, 1: 9}
    # Partition 1 was never read: its lag is unknown, not zero.
    assert sensor.lag(lambda t: highwater[t.partition], [tp, other]) == {
        ("t.events.search", 0): 8}


def test_inference_stage_sums_the_model_stages() -> None:
    assert inference_stages({"queue": 0.1, "tokenize": 0.01, "encode": 0.02, "head": 0.005,
                             "score": 0.04}) == {"queue": 0.1, "tokenize": 0.01,
                                                 "inference": 0.025}
