"""Measure the zero-shot scorer: encoder throughput and per-search latency, warm and cold.

    python -m streams.tools.zeroshot_bench --models-dir ~/.cache/streamrank/models

Uses an already exported model (no torch here); the export time is read from its manifest.
Texts are synthetic product titles of about 20 tokens, generated from a fixed seed.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from scoring.base import ScoreRequest
from scoring.encoder import OnnxEncoder
from scoring.zeroshot import MODEL_NAME, ZeroShotScorer

log = logging.getLogger(__name__)

BRANDS = ["Acme", "Northpeak", "Velora", "Kestrel", "Brightline", "Oakmont", "Lumen", "Zephyr"]
ADJECTIVES = [
    "lightweight",
    "waterproof",
    "ergonomic",
    "stainless",
    "wireless",
    "organic",
    "compact",
    "heavy-duty",
    "breathable",
    "foldable",
    "insulated",
    "vintage",
]
PRODUCTS = [
    "running shoes",
    "hiking boots",
    "chef knife",
    "coffee grinder",
    "backpack",
    "headphones",
    "desk lamp",
    "yoga mat",
    "rain jacket",
    "water bottle",
    "drill",
    "board game",
    "wool scarf",
    "smart watch",
    "frying pan",
    "tent",
]
DETAILS = [
    "for men",
    "for women",
    "for kids",
    "with carrying case",
    "size 42",
    "2 pack",
    "black",
    "navy blue",
    "olive green",
    "30 l",
    "1.5 kg",
    "usb-c rechargeable",
]


class Catalog:
    """Deterministic synthetic titles, queries and histories."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.serial = 0

    def _pick(self, words: Sequence[str]) -> str:
        return words[int(self.rng.integers(len(words)))]

    def title(self) -> str:
        self.serial += 1
        return (
            f"{self._pick(BRANDS)} {self._pick(ADJECTIVES)} {self._pick(ADJECTIVES)} "
            f"{self._pick(PRODUCTS)} {self._pick(DETAILS)}, {self._pick(DETAILS)}, "
            f"model {self.serial}"
        )

    def items(self, n: int) -> list[tuple[str, str]]:
        return [(f"item-{self.serial + 1}", self.title()) for _ in range(n)]

    def query(self) -> str:
        self.serial += 1
        return f"{self._pick(ADJECTIVES)} {self._pick(PRODUCTS)} {self.serial}"

    def history(self, n: int) -> list[str]:
        return [self.query() if i % 2 else self.title() for i in range(n)]


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ms = np.asarray(samples) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.mean())


def _time_searches(scorer: ZeroShotScorer, requests: Sequence[ScoreRequest]) -> list[float]:
    took = []
    for req in requests:
        start = time.perf_counter()
        scorer.score([req])
        took.append(time.perf_counter() - start)
    return took


def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    model_dir = Path(args.models_dir).expanduser() / MODEL_NAME
    start = time.perf_counter()
    encoder = OnnxEncoder(model_dir, device=args.device, threads=args.threads, batch_size=64)
    load_s = time.perf_counter() - start
    rows = [
        ("model", f"{encoder.version} ({encoder.provider})"),
        ("export time (manifest)", f"{encoder.manifest.export_seconds:.1f} s"),
        ("load + verify sha256", f"{load_s:.2f} s"),
    ]
    cat = Catalog()
    texts = [cat.title() for _ in range(args.throughput_texts)]
    _, mask = encoder.tokenize(texts[:256])
    tokens = float(mask.sum(axis=1).mean())
    encoder.encode(texts[:64])  # warm-up: first runs allocate
    start = time.perf_counter()
    encoder.encode(texts)
    rate = len(texts) / (time.perf_counter() - start)
    rows.append((f"encode {len(texts)} titles (~{tokens:.0f} tokens), batch 64", f"{rate:.0f}/s"))

    n, k, h = args.searches, args.candidates, args.history
    pool = cat.items(args.catalog)

    def searches(
        make_query: Callable[[int], str], make_hist: Callable[[int], list[str]]
    ) -> list[ScoreRequest]:
        picks = [cat.rng.choice(len(pool), size=k, replace=False) for _ in range(n)]
        return [
            ScoreRequest(make_query(i), make_hist(i), [pool[j] for j in picks[i]]) for i in range(n)
        ]

    users = [cat.history(h) for _ in range(20)]
    queries = [cat.query() for _ in range(50)]
    warm_scorer = ZeroShotScorer(encoder)
    warm_scorer.warm_items(pool)  # every catalog item cached, as a worker warms its catalog
    # Every query and every user's history cached as well (50 queries cover the 20 users).
    warm_scorer.score([ScoreRequest(q, users[i % 20], []) for i, q in enumerate(queries)])
    scenarios = {
        "items cached, query+history cached": searches(
            lambda i: queries[i % 50], lambda i: users[i % 20]
        ),
        "items cached, new query, history cached": searches(
            lambda i: cat.query(), lambda i: users[i % 20]
        ),
        "items cached, new query, new history": searches(
            lambda i: cat.query(), lambda i: cat.history(h)
        ),
    }
    for label, reqs in scenarios.items():
        before = warm_scorer.encoded_texts
        p50, p99, mean = _percentiles(_time_searches(warm_scorer, reqs))
        encodes = (warm_scorer.encoded_texts - before) / len(reqs)
        rows.append((f"search {k} cand., {label}", _fmt(p50, p99, mean, encodes)))
    cold_scorer = ZeroShotScorer(encoder)
    cold = [ScoreRequest(cat.query(), cat.history(h), cat.items(k)) for _ in range(n)]
    p50, p99, mean = _percentiles(_time_searches(cold_scorer, cold))
    encodes = cold_scorer.encoded_texts / len(cold)
    label = "cold items + new query/history"
    rows.append((f"search {k} cand., {label}", _fmt(p50, p99, mean, encodes)))
    return rows


def _fmt(p50: float, p99: float, mean: float, encodes: float) -> str:
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, mean {mean:.1f} ms ({encodes:.1f} texts encoded)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.tools.zeroshot_bench", description=__doc__
    )
    parser.add_argument("--models-dir", required=True, help="folder holding zeroshot-minilm/")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--history", type=int, default=5, help="history texts per user")
    parser.add_argument("--catalog", type=int, default=2000, help="items in the warm catalog")
    parser.add_argument("--throughput-texts", type=int, default=1024)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = run(args)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 60}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"(threads={args.threads or 'default'}, {args.searches} searches per row)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
