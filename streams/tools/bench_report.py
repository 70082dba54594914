"""The `bench pipeline` report: JSON for tools (a top-level `capacity` object) and markdown.

    {"capacity": {"searches_per_s", "p99_ms", "degraded", "scorer_searches_per_s"},
     "meta": {...}, "scorer": {...}, "catalog": {...}, "sustained": [steps],
     "stages": {stage: {count, mean_ms, p50_ms, p99_ms}}, "warm_burst": {...},
     "actions": {...}, "rank_api": {...}, "overload": {...}, "memory": {...}}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streams.tools.bench_load import Step

STAGE_ORDER = ("decode", "state", "features", "queue", "tokenize", "inference", "publish",
               "samples", "end_to_end")


@dataclass
class Report:
    meta: dict[str, Any] = field(default_factory=dict)
    scorer: dict[str, Any] = field(default_factory=dict)
    catalog: dict[str, Any] = field(default_factory=dict)
    sustained: list[Step] = field(default_factory=list)
    held: Step | None = None
    warm_burst: Step | None = None
    warm: dict[str, Any] = field(default_factory=dict)
    actions: dict[str, Any] = field(default_factory=dict)
    rank_http: Step | None = None
    rank_kafka: Step | None = None
    overload: Step | None = None
    recovery: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)

    def breakdown(self) -> Step | None:
        """The step whose stage times are reported: the last that held, else the lowest."""
        if self.held is not None:
            return self.held
        return min(self.sustained, key=lambda s: s.offered_per_s, default=None)

    def capacity(self) -> dict[str, Any]:
        held = self.held
        return {
            "searches_per_s": held.offered_per_s if held else 0.0,
            "p99_ms": held.p99_ms if held else None,
            "degraded": held.degraded if held else None,
            "scorer_searches_per_s": self.scorer.get("searches_per_s", 0.0),
        }

    def as_dict(self) -> dict[str, Any]:
        shown = self.breakdown()
        stages = shown.stages if shown is not None else {}
        return {
            "capacity": self.capacity(), "meta": self.meta, "scorer": self.scorer,
            "catalog": self.catalog, "sustained": [asdict(s) for s in self.sustained],
            "stages": {k: asdict(v) for k, v in stages.items()},
            "warm_burst": {**self.warm, "step": asdict(self.warm_burst)
                           if self.warm_burst else None},
            "actions": self.actions,
            "rank_api": {"http": asdict(self.rank_http) if self.rank_http else None,
                         "kafka": asdict(self.rank_kafka) if self.rank_kafka else None},
            "overload": {**self.recovery,
                         "step": asdict(self.overload) if self.overload else None},
            "memory": self.memory,
        }


def _steps(steps: list[Step | None]) -> list[str]:
    lines = ["| step | offered/s | achieved/s | searches | p50 ms | p99 ms | max ms "
             "| worker p50/p99 ms | degraded |", "|---|---|---|---|---|---|---|---|---|"]
    for s in steps:
        if s is None:
            continue
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.reasons.items()))
        lines.append(f"| {s.name} | {s.offered_per_s} | {s.achieved_per_s} | {s.searches} "
                     f"| {s.p50_ms} | {s.p99_ms} | {s.max_ms} | {s.worker_p50_ms} / "
                     f"{s.worker_p99_ms} | {s.degraded}{f' ({reasons})' if reasons else ''} |")
    return lines


def render(report: Report) -> str:
    m, cap = report.meta, report.capacity()
    lines = [
        f"`streamrank bench pipeline`: {m.get('kind')} {m.get('model_version')} "
        f"({m.get('variant')}) on {m.get('provider')}; {m.get('items')} items from "
        f"{m.get('catalog')}; {m.get('candidates')} candidates/search; {m.get('users')} users; "
        f"one worker, {m.get('partitions')} partitions; attribution window "
        f"{m.get('attribution_window_s')} s, {m.get('click_rate')} of results clicked; search "
        f"deadline {m.get('deadline_ms')} ms, max age {m.get('max_age_ms')} ms; load average "
        f"at start {m.get('load_average')}",
        "",
        (f"**Capacity: {cap['searches_per_s']} searches/s** through Kafka at p99 "
         f"{cap['p99_ms']} ms (SLO {m.get('slo_ms')} ms), {cap['degraded']} degraded"
         if report.held is not None else
         f"**Capacity: none** (no step held p99 <= {m.get('slo_ms')} ms with nothing degraded)")
        + f"; the scorer alone: {cap['scorer_searches_per_s']} searches/s at p99 "
        f"{report.scorer.get('p99_ms')} ms.",
        "",
        f"Catalog warm-up: {report.catalog.get('items')} items in "
        f"{report.catalog.get('seconds')} s ({report.catalog.get('ms_per_item')} ms per item).",
        "", "## Sustained capacity (rising open-loop steps)", "", *_steps(list(report.sustained)),
    ]
    shown = report.breakdown()
    if shown is not None and shown.stages:
        lines += ["", f"## Where the time goes at {shown.offered_per_s}/s (worker "
                  "histograms)", "", "| stage | count | mean ms | p50 ms | p99 ms |",
                  "|---|---|---|---|---|"]
        stages = shown.stages
        for name in [*[s for s in STAGE_ORDER if s in stages],
                     *sorted(set(stages) - set(STAGE_ORDER))]:
            st = stages[name]
            lines.append(f"| {name} | {st.count} | {st.mean_ms} | {st.p50_ms} | {st.p99_ms} |")
    lines += ["", "## Other phases", "", *_steps([report.warm_burst, report.rank_kafka,
                                                   report.rank_http, report.overload])]
    warm, act, rec = report.warm, report.actions, report.recovery
    lines += [
        "",
        f"- Warm-up burst: {warm.get('new_items')} new items warmed in "
        f"{warm.get('warm_seconds')} s while the burst ran.",
        f"- Action ingest (attribution on): {act.get('actions')} actions applied at "
        f"{act.get('actions_per_s')}/s (sent in {act.get('send_seconds')} s).",
    ]
    if report.rank_http is not None:
        extra = report.rank_http.extra
        lines.append(f"- POST /rank adds {extra.get('added_p50_ms')} ms p50 "
                     f"({extra.get('added_p99_ms')} ms p99) over the worker's own time; "
                     f"{extra.get('vs_kafka_p50_ms')} ms p50 over the Kafka path at the same "
                     "rate.")
    if rec:
        lines.append(
            f"- Overload: {rec.get('answered')} answered, {rec.get('over_bound_plus_100ms')} "
            f"later than the bound ({rec.get('bound_ms')} ms: max age + deadline) + 100 ms; "
            f"latency p99 {rec.get('latency_p99_ms')} ms, max {rec.get('latency_max_ms')} ms; "
            f"back to normal {rec.get('recovered_after_s')} s after the overload ended.")
    if report.memory:
        lines += ["", "## Worker memory (RSS, MB)", "", "| phase | first | peak | last |",
                  "|---|---|---|---|"]
        for phase, mb in report.memory.get("by_phase", {}).items():
            lines.append(f"| {phase} | {mb.get('first_mb')} | {mb.get('peak_mb')} | "
                         f"{mb.get('last_mb')} |")
    return "\n".join(lines) + "\n"


def write(report: Report, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(render(report))
    out.with_suffix(".json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")


__all__ = ["Report", "render", "write"]
