"""What `bench pipeline` reads from its worker: /metrics histograms and counters, resident
memory over time, and the worker's own status pages.

Stage times come from the worker's `streamrank_stage_seconds` histograms: two scrapes around a
load step give that step's count, mean and bucket-interpolated p50/p99 per stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from streams.tools.worker_process import WorkerProcess

SAMPLE = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text → {(metric, labels): value} (samples with labels only)."""
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            labels = frozenset(LABEL.findall(m.group(2)))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


@dataclass
class StageTimes:
    count: int
    mean_ms: float
    p50_ms: float
    p99_ms: float


def _quantile(buckets: list[tuple[float, float]], total: float, q: float) -> float:
    """Linear interpolation inside the cumulative bucket that holds quantile q (seconds)."""
    target = q * total
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= target:
            if math.isinf(upper):
                return lower
            span = cumulative - below
            return lower + (upper - lower) * ((target - below) / span if span else 1.0)
        lower, below = upper, cumulative
    return lower


def stage_times(before: str, after: str, metric: str = "streamrank_stage_seconds"
                ) -> dict[str, StageTimes]:
    """Per stage, what happened between two scrapes."""
    a, b = parse(before), parse(after)

    def delta(key: tuple[str, frozenset[tuple[str, str]]]) -> float:
        return b.get(key, 0.0) - a.get(key, 0.0)

    stages = sorted({dict(labels)["stage"] for name, labels in b
                     if name == f"{metric}_count" and "stage" in dict(labels)})
    out = {}
    for stage in stages:
        count = delta((f"{metric}_count", frozenset({("stage", stage)})))
        if count <= 0:
            continue
        total = delta((f"{metric}_sum", frozenset({("stage", stage)})))
        buckets = sorted(
            (float(dict(labels)["le"]), delta((name, labels)))
            for name, labels in b
            if name == f"{metric}_bucket" and dict(labels).get("stage") == stage)
        out[stage] = StageTimes(int(count), round(total / count * 1000, 3),
                                round(_quantile(buckets, count, 0.5) * 1000, 2),
                                round(_quantile(buckets, count, 0.99) * 1000, 2))
    return out


def counter(text: str, metric: str, **labels: str) -> float:
    """The sum of `metric` over the samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (name, got), v in parse(text).items() if name == metric and want <= got)


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class MemoryTrace:
    """The worker's resident memory, sampled every `every_s`, labelled with the phase."""

    every_s: float = 1.0
    samples: list[tuple[float, str, float]] = field(default_factory=list)  # (s, phase, MB)
    phase: str = "start"

    def peak(self, phase: str | None = None) -> float:
        values = [mb for _, p, mb in self.samples if phase is None or p == phase]
        return round(max(values), 1) if values else float("nan")

    def by_phase(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for _, phase, mb in self.samples:
            entry = out.setdefault(phase, {"first_mb": round(mb, 1), "peak_mb": mb})
            entry["peak_mb"] = round(max(entry["peak_mb"], mb), 1)
            entry["last_mb"] = round(mb, 1)
        return out

    async def run(self, worker: WorkerProcess) -> None:
        start = time.monotonic()
        while worker.alive:
            self.samples.append((round(time.monotonic() - start, 1), self.phase,
                                 rss_mb(worker.proc.pid)))
            await asyncio.sleep(self.every_s)


__all__ = ["MemoryTrace", "StageTimes", "counter", "parse", "rss_mb", "stage_times"]
