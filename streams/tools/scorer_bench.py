"""`streamrank bench scorer`: torch eager vs ONNX Runtime fp32 vs int8, per model kind.

Same model weights, same inputs in one run. Searches have 50 candidates with real product
text (a product file read by streams/tools/products.py when given, scored as `Item.text()`:
exactly the text the worker scores), a 10-title history, and a query never seen before (so its
encoding is paid); item embeddings are warm, as in a worker that embeds the catalog on arrival.
Three measurements per backend:
  batch sweep  searches per call in --batches: call latency, searches/s, pairs/s. The backends
               take turns in half-second blocks, so a noisy neighbour slows them alike;
  load         open-loop arrivals through the MicroBatcher at fractions of that backend's
               best searches/s: p50/p99 per search, degraded count;
  capacity     the highest offered rate (rising x1.25) that the MicroBatcher serves with
               p99 <= --slo-ms and nothing degraded: what a worker on this CPU can promise.
Ratios are against torch eager of the same kind. Ranking agreement (Kendall τ, top-10
overlap) of each ORT variant with torch is measured on the benchmark's own searches.

The hybrid kind's searches also carry behaviour inputs as the worker builds them (a user with
a full retained interaction set of 1,000 items, statistics for every catalog item), so its
figures include feature assembly; `assembly` times the builder alone per search (1,000-item
user record, 50 candidates, 100 co-occurrence neighbours per item). The hybrid has no torch
eager backend here (its ratio column shows "—").
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contracts import Item
from scoring import ModelRegistry
from scoring.agreement import kendall_tau, top_overlap
from scoring.base import Scorer, ScoreRequest
from scoring.batcher import MicroBatcher
from scoring.kinds import LEARNED_KINDS, ModelKind, kind_names
from scoring.serving import ScorerSlot
from scoring.training.export_ranker import ensure_base_ranker
from scoring.training.torch_scorers import TorchCascade, TorchCross, TorchEmbed
from streams.tools.behaviour_workload import USERS, Behaviour
from streams.tools.products import sample_products

log = logging.getLogger(__name__)

KINDS = tuple(kind_names(LEARNED_KINDS))
BACKENDS = ("torch", "fp32", "int8")
Clock = Callable[[], float]


@dataclass
class Row:
    kind: str
    backend: str
    provider: str
    batch: int
    calls: int
    call_ms_p50: float
    searches_per_s: float
    pairs_per_s: float


@dataclass
class LoadRow:
    kind: str
    backend: str
    target_per_s: float
    achieved_per_s: float
    p50_ms: float
    p99_ms: float
    degraded: int
    searches: int


@dataclass
class Capacity:
    """The highest offered rate that held the latency SLO through the micro-batcher."""

    kind: str
    backend: str
    slo_p99_ms: float
    searches_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass
class Report:
    meta: dict[str, Any]
    sweep: list[Row] = field(default_factory=list)
    load: list[LoadRow] = field(default_factory=list)
    capacity: list[Capacity] = field(default_factory=list)
    agreement: dict[str, dict[str, float]] = field(default_factory=dict)


def product_items(path: Path | None, n: int, seed: int) -> list[Item]:
    """`n` catalog items: a seeded sample of the product file when given, else synthetic."""
    if path is not None and path.exists():
        return sample_products(path, n, seed)
    rng = random.Random(seed)
    words = ["wireless", "speaker", "shoe", "running", "coffee", "grinder", "camera", "lens",
             "cable", "charger", "laptop", "stand", "kettle", "tent", "lamp", "desk", "chair"]
    return [Item(item_id=f"i{k}", title=" ".join(rng.choice(words)
                                                 for _ in range(rng.randint(4, 14))))
            for k in range(n)]


LOAD_SEARCHES = 16_000


def workload(catalog: list[Item], searches: int, candidates: int, seed: int
             ) -> list[ScoreRequest]:
    """`searches` requests; the first USERS are one per user (the warm-up pass). Candidates
    carry `Item.text()`, histories item titles, queries a few title words: as the worker."""
    rng = random.Random(seed)
    titles = {item.item_id: item.title for item in catalog}
    items = [(item.item_id, item.text()) for item in catalog]
    users = [[item.title for item in rng.sample(catalog, 10)] for _ in range(USERS)]
    out = [ScoreRequest(query="warm up", history=h, candidates=rng.sample(items, candidates))
           for h in users]
    for n in range(searches):
        cands = rng.sample(items, candidates)
        words = titles[rng.choice(cands)[0]].split()[:3]
        out.append(ScoreRequest(query=f"{' '.join(words)} {n}", history=rng.choice(users),
                                candidates=cands))
    return out


def build(kind: ModelKind, backend: str, version_dir: Path, device: str,
          threads: int | None = None) -> Scorer:
    if backend == "torch":
        torch_cls: dict[ModelKind, Callable[[Path, str], Scorer]] = {
            ModelKind.EMBED: TorchEmbed, ModelKind.CROSS: TorchCross,
            ModelKind.CASCADE: TorchCascade}
        return torch_cls[kind](version_dir, "cuda" if device == "cuda" else "cpu")
    options: dict[str, Any] = {} if threads is None else {"threads": threads}
    return ModelRegistry(version_dir.parent).load(version_dir, device=device,  # type: ignore[arg-type]
                                                  variant=backend, **options)


def _call(scorer: Scorer, chunk: list[ScoreRequest], clock: Clock
          ) -> tuple[float, list[list[float]]]:
    t0 = clock()
    scores = scorer.score(chunk).scores
    return clock() - t0, scores


def sweep(kind: str, scorers: dict[str, Scorer], reqs: list[ScoreRequest], batch: int,
          budget_s: float, block_s: float = 0.5, clock: Clock = time.perf_counter,
          ) -> tuple[list[Row], dict[str, list[list[float]]]]:
    """Calls of `batch` searches, the backends taking turns in blocks of ~block_s each until
    every backend had ~budget_s, so a noisy neighbour slows them alike. Every backend scores
    the same chunks in the same order (its own caches: each query is new to each backend).
    Returns a row per backend and each backend's scores of the first chunk. `clock` measures
    the calls (a fake one in tests)."""
    times: dict[str, list[float]] = {b: [] for b in scorers}
    first: dict[str, list[list[float]]] = {}
    cursor = dict.fromkeys(scorers, 0)
    spent = dict.fromkeys(scorers, 0.0)
    while any(spent[b] < budget_s or len(times[b]) < 2 for b in scorers):
        progressed = False
        for backend, scorer in scorers.items():
            block_end = clock() + block_s
            while cursor[backend] + batch <= len(reqs) and (
                    clock() < block_end or len(times[backend]) < 2):
                chunk = reqs[cursor[backend] : cursor[backend] + batch]
                cursor[backend] += batch
                took, scores = _call(scorer, chunk, clock)
                times[backend].append(took)
                spent[backend] += took
                first.setdefault(backend, scores)
                progressed = True
                if spent[backend] >= budget_s and len(times[backend]) >= 2:
                    break
        if not progressed:  # out of requests
            break
    n_pairs = sum(len(r.candidates) for r in reqs[:batch])
    rows = []
    for backend, scorer in scorers.items():
        mean = float(np.mean(times[backend]))
        rows.append(Row(kind, backend, scorer.provider, batch, len(times[backend]),
                        round(float(np.median(times[backend])) * 1000, 2),
                        round(batch / mean, 1), round(n_pairs / mean, 1)))
    return rows, first


async def _load(scorer: Scorer, reqs: list[ScoreRequest], rate: float,
                max_pairs: int) -> tuple[float, list[float], int]:
    batcher = MicroBatcher(ScorerSlot(scorer), max_batch_pairs=max_pairs, max_wait_ms=5,
                           max_queue=4096, timeout_ms=60_000)
    batcher.start()
    latencies: list[float] = []
    degraded = 0

    async def one(req: ScoreRequest) -> None:
        nonlocal degraded
        t0 = time.perf_counter()
        outcome = await batcher.submit(req)
        latencies.append((time.perf_counter() - t0) * 1000)
        degraded += outcome.degraded

    n = len(reqs)
    start = time.perf_counter()
    tasks = []
    for k in range(n):
        await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(reqs[k])))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await batcher.stop()
    return n / elapsed, latencies, degraded


def agreement(want: Sequence[Sequence[float]], got: Sequence[Sequence[float]]) -> dict[str, float]:
    taus = [kendall_tau(np.asarray(w), np.asarray(g)) for w, g in zip(want, got, strict=True)]
    tops = [top_overlap(np.asarray(w), np.asarray(g)) for w, g in zip(want, got, strict=True)]
    return {"kendall_tau_mean": round(float(np.mean(taus)), 4),
            "kendall_tau_min": round(float(np.min(taus)), 4),
            "top10_overlap_mean": round(float(np.mean(tops)), 4)}


class Fresh:
    """Hands out requests in order, never the same twice while it lasts: a query a backend
    has already seen is cached by it and would make a load test look faster than it is."""

    def __init__(self, reqs: list[ScoreRequest]) -> None:
        self.reqs = reqs
        self.next = 0
        self.wrapped = False

    def take(self, n: int) -> list[ScoreRequest]:
        out = []
        for _ in range(n):
            if self.next >= len(self.reqs):
                self.next, self.wrapped = 0, True
            out.append(self.reqs[self.next])
            self.next += 1
        return out


def _load_row(kind: str, backend: str, scorer: Scorer, fresh: Fresh, rate: float,
              seconds: float, max_pairs: int) -> LoadRow:
    reqs = fresh.take(max(4, int(rate * seconds)))
    achieved, lat, degraded = asyncio.run(_load(scorer, reqs, rate, max_pairs))
    return LoadRow(kind, backend, round(rate, 1), round(achieved, 1),
                   round(float(np.percentile(lat, 50)), 1),
                   round(float(np.percentile(lat, 99)), 1), degraded, len(lat))


def capacity(kind: str, backend: str, scorer: Scorer, fresh: Fresh, start: float,
             slo_ms: float, seconds: float, max_pairs: int, steps: int = 12,
             measure: Callable[[float], LoadRow] | None = None) -> Capacity:
    """Open-loop arrivals at rising rates (x1.25 from `start`) until the SLO breaks: p99 over
    slo_ms, any degraded answer, or arrivals not kept up with. The last rate that held is the
    backend's capacity through the micro-batcher (0 when even `start` did not hold).
    `measure(rate)` runs one step (default: `seconds` of fresh searches through a batcher)."""
    if measure is None:
        def measure(rate: float) -> LoadRow:
            return _load_row(kind, backend, scorer, fresh, rate, seconds, max_pairs)

    held: LoadRow | None = None
    rate = start
    for _ in range(steps):
        row = measure(rate)
        log.info("capacity step %s", row)
        if row.p99_ms > slo_ms or row.degraded or row.achieved_per_s < 0.95 * rate:
            break
        held = row
        rate *= 1.25
    return Capacity(kind, backend, slo_ms, held.target_per_s if held else 0.0,
                    held.p50_ms if held else 0.0, held.p99_ms if held else 0.0)


def run(models_dir: Path, *, kinds: Sequence[str] = KINDS, backends: Sequence[str] = BACKENDS,
        batches: Sequence[int] = (1, 8, 32), device: str = "cpu", budget_s: float = 4.0,
        load_fractions: Sequence[float] = (0.5, 0.9), load_seconds: float = 6.0,
        slo_ms: float = 50.0, products: Path | None = None, candidates: int = 50,
        seed: int = 7, threads: int | None = None) -> Report:
    # The same intra-op thread count for torch and ONNX Runtime (default: torch's own).
    torch.set_num_threads(threads or max(1, torch.get_num_threads()))
    catalog = product_items(products, 3000, seed)
    # 4,000 for the sweeps, the rest for load tests: every search a backend sees is new to it.
    reqs = workload(catalog, 4000 + LOAD_SEARCHES, candidates, seed)
    items = [item for r in reqs for item in r.candidates]
    report = Report(meta={
        "device": device, "candidates": candidates, "torch_threads": torch.get_num_threads(),
        "texts": products.name if products is not None and products.exists() else "synthetic",
        "budget_s": budget_s, "load_seconds": load_seconds, "slo_ms": slo_ms,
        "ort_threads": threads or "default (physical cores)",
    })
    plain = reqs
    for kind in (ModelKind(k) for k in kinds):
        reqs = plain
        if kind is ModelKind.HYBRID:
            behaviour = Behaviour(catalog, seed)
            report.meta["assembly"] = behaviour.assembly(plain[USERS:])
            log.info("feature assembly per search: %s", report.meta["assembly"])
            reqs = behaviour.attach(plain)
        version_dir = ensure_base_ranker(kind, models_dir)
        report.meta[f"{kind}_version"] = version_dir.name
        scorers: dict[str, Scorer] = {}
        for backend in backends:
            try:
                scorer = build(kind, backend, version_dir, device, threads)
            except Exception as exc:  # e.g. no int8 variant shipped: say so, go on
                log.warning("%s/%s unavailable: %s", kind, backend, exc)
                continue
            report.meta[f"{kind}/{backend}_variant"] = scorer.variant_decision.as_dict()
            # Steady state of a worker: catalog embedded on arrival, users' histories seen.
            if scorer.caches_items:
                scorer.warm_items(list(dict(items).items()))
            if kind is not ModelKind.CROSS:  # the cross-encoder caches nothing but token ids
                for start in range(0, USERS, 8):
                    scorer.score(reqs[start : start + 8])
            scorers[backend] = scorer
        # Fresh queries everywhere: the sweep and the load tests use disjoint halves.
        measured = reqs[USERS:4000]
        loaded = reqs[4000:]
        # Cross-encoder calls of 32 searches take minutes on a CPU: capped at 8 there.
        sizes = [b for b in batches if kind in (ModelKind.EMBED, ModelKind.HYBRID) or b <= 8
                 ] or [1]
        width = len(measured) // len(sizes)
        best = dict.fromkeys(scorers, 0.0)
        compared: dict[str, list[list[float]]] = {}
        for i, batch in enumerate(sizes):
            part = measured[i * width : (i + 1) * width]
            rows, first = sweep(kind, scorers, part, batch, budget_s)
            report.sweep.extend(rows)
            for row in rows:
                log.info("%s", row)
                best[row.backend] = max(best[row.backend], row.searches_per_s)
            for backend, scores in first.items():
                compared.setdefault(backend, []).extend(scores)
        if "torch" in compared:  # over every batch size's first call: 1 + 8 + 32 searches
            for backend, scores in compared.items():
                if backend != "torch":
                    report.agreement[f"{kind}/{backend}"] = agreement(compared["torch"], scores)
        max_pairs = candidates * max(sizes)
        for backend, scorer in scorers.items():
            fresh = Fresh(loaded)  # each backend has its own caches: the same searches, new
            for fraction in load_fractions:
                rate = max(0.5, best[backend] * fraction)
                report.load.append(_load_row(kind, backend, scorer, fresh, rate, load_seconds,
                                             max_pairs))
                log.info("%s", report.load[-1])
            report.capacity.append(capacity(
                kind, backend, scorer, fresh, max(0.5, 0.25 * best[backend]), slo_ms,
                max(2.0, load_seconds / 2), max_pairs))
            log.info("%s", report.capacity[-1])
            if fresh.wrapped:
                log.warning("%s/%s: load tests ran out of fresh searches (cached ones reused)",
                            kind, backend)
                report.meta[f"{kind}/{backend}_reused_searches"] = True
    return report


def render(report: Report) -> str:
    base = {(r.kind, r.batch): r.searches_per_s for r in report.sweep if r.backend == "torch"}
    lines = [f"scorer benchmark: {json.dumps(report.meta)}", "",
             "| kind | backend | provider | searches/call | calls | call p50 ms | searches/s "
             "| pairs/s | x torch |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report.sweep:
        ratio = (f"{r.searches_per_s / base[(r.kind, r.batch)]:.2f}"
                 if base.get((r.kind, r.batch)) else "—")  # the hybrid has no torch backend
        lines.append(f"| {r.kind} | {r.backend} | {r.provider} | {r.batch} | {r.calls} | "
                     f"{r.call_ms_p50} | {r.searches_per_s} | {r.pairs_per_s} | {ratio} |")
    lines += ["", "| kind | backend | offered/s | achieved/s | p50 ms | p99 ms | degraded "
              "| searches |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.kind} | {r.backend} | {r.target_per_s} | {r.achieved_per_s} | {r.p50_ms} "
              f"| {r.p99_ms} | {r.degraded} | {r.searches} |" for r in report.load]
    torch_cap = {c.kind: c.searches_per_s for c in report.capacity if c.backend == "torch"}
    lines += ["", "| kind | backend | capacity searches/s at p99 ≤ SLO | p50 ms | p99 ms "
              "| x torch |", "|---|---|---|---|---|---|"]
    for c in report.capacity:
        times = (f"{c.searches_per_s / torch_cap[c.kind]:.2f}" if torch_cap.get(c.kind)
                 else "—")
        lines.append(f"| {c.kind} | {c.backend} | {c.searches_per_s} (SLO {c.slo_p99_ms:g} ms) "
                     f"| {c.p50_ms} | {c.p99_ms} | {times} |")
    lines += ["", "| agreement with torch eager | Kendall τ mean | τ min | top-10 overlap |",
              "|---|---|---|---|"]
    lines += [f"| {k} | {v['kendall_tau_mean']} | {v['kendall_tau_min']} | "
              f"{v['top10_overlap_mean']} |" for k, v in report.agreement.items()]
    return "\n".join(lines) + "\n"


def write(report: Report, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(render(report))
    out.with_suffix(".json").write_text(json.dumps(asdict(report), indent=2) + "\n")
