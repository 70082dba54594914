"""bench pipeline's arithmetic: stage times between two /metrics scrapes, a step's verdict,
and the report's capacity object. No broker, no worker."""

from __future__ import annotations

import json

import pytest

from contracts import RankedItem, RankedResult
from streams.tools.bench_load import summarize
from streams.tools.bench_probe import counter, stage_times
from streams.tools.bench_report import Report, render

BUCKETS = (0.001, 0.01, 0.1, float("inf"))


def scrape(stage_counts: dict[str, tuple[list[int], float]]) -> str:
    """Prometheus text for streamrank_stage_seconds: per stage, counts per bucket and sum."""
    lines = []
    for stage, (per_bucket, total) in stage_counts.items():
        cumulative = 0
        for le, n in zip(BUCKETS, per_bucket, strict=True):
            cumulative += n
            bound = "+Inf" if le == float("inf") else repr(le)
            lines.append(f'streamrank_stage_seconds_bucket{{le="{bound}",stage="{stage}"}} '
                         f"{cumulative}.0")
        lines.append(f'streamrank_stage_seconds_count{{stage="{stage}"}} {cumulative}.0')
        lines.append(f'streamrank_stage_seconds_sum{{stage="{stage}"}} {total}')
    lines.append('streamrank_events_in_total{topic="a"} 5.0')
    lines.append('streamrank_events_in_total{topic="b"} 7.0')
    return "\n".join(lines) + "\n"


def test_stage_times_are_the_difference_between_two_scrapes() -> None:
    before = scrape({"decode": ([10, 0, 0, 0], 0.005), "queue": ([5, 5, 0, 0], 0.03)})
    after = scrape({"decode": ([110, 0, 0, 0], 0.055),  # +100 under 1 ms, 0.5 ms each
                    "queue": ([5, 5, 98, 2], 3.03)})  # +100: 98 in (10, 100] ms, 2 above
    got = stage_times(before, after)
    assert got["decode"].count == 100 and got["decode"].mean_ms == pytest.approx(0.5)
    assert got["decode"].p99_ms <= 1.0
    assert got["queue"].count == 100 and got["queue"].mean_ms == pytest.approx(30.0)
    assert 10.0 < got["queue"].p50_ms < 100.0 and got["queue"].p99_ms == pytest.approx(100.0)
    assert counter(after, "streamrank_events_in_total") == 12.0
    assert counter(after, "streamrank_events_in_total", topic="b") == 7.0


def result(rid: str, own_ms: int, reason: str | None = None) -> RankedResult:
    return RankedResult(request_id=rid, user_id="u", items=[RankedItem(item_id="a", score=1,
                        rank=1)], model_version="m", degraded=reason is not None,
                        degraded_reason=reason, received_ts=1000, published_ts=1000 + own_ms)


def test_a_step_holds_only_within_the_slo_undegraded_and_keeping_up() -> None:
    fine = summarize("ok", 10.0, [(float(ms), result(f"r{ms}", 5)) for ms in range(1, 41)], 4.0)
    assert fine.held(50.0) and fine.p99_ms == 40.0 and fine.worker_p50_ms == 5.0
    assert not fine.held(30.0)  # p99 above the SLO
    shed = summarize("shed", 10.0, [(5.0, result("a", 1)), (5.0, result("b", 0, "stale"))],
                     0.2)
    assert shed.degraded == 1 and shed.reasons == {"stale": 1} and not shed.held(50.0)
    slow = summarize("slow", 10.0, [(5.0, result(f"r{k}", 1)) for k in range(10)], 2.0)
    assert not slow.held(50.0)  # 5/s achieved of 10/s offered


def test_the_report_leads_with_a_capacity_object() -> None:
    held = summarize("s", 300.0, [(20.0, result(f"r{k}", 9)) for k in range(300)], 1.0)
    report = Report(meta={"slo_ms": 50}, scorer={"searches_per_s": 400.0, "p99_ms": 30.0},
                    sustained=[held], held=held)
    data = report.as_dict()
    assert next(iter(data)) == "capacity"
    assert data["capacity"] == {"searches_per_s": 300.0, "p99_ms": 20.0, "degraded": 0,
                                "scorer_searches_per_s": 400.0}
    json.dumps(data)  # every figure serializes
    assert "**Capacity: 300.0 searches/s**" in render(report)
    assert Report().capacity()["searches_per_s"] == 0.0
