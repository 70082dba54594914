"""The prose around the report's tables, written from the run's own figures.

Kept apart from `report.py` (layout, plots) so each says one thing: this module decides what
the numbers mean in words (setup, verdict, Kafka agreement, timings), report.py lays them out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from evaluation.protocol import Replay
from evaluation.results import MRR, NDCG, Table


def _pct(x: float) -> str:
    return f"{x:+.1%}"


def setup(meta: Mapping[str, Any], rep: Replay) -> list[str]:
    cfg = rep.config
    counts = rep.counts
    kinds: dict[str, int] = counts.get("test_query_kinds", {})
    recall = rep.recall()
    split = datetime.fromtimestamp(rep.split_ts / 1000, UTC).strftime("%Y-%m-%d")
    pops = meta["populations"]
    lines = [
        f"- Data: `{rep.data.path}` ({rep.data.layout}): {counts['ratings']} ratings, "
        f"{len(rep.data.movies)} movies, {len(rep.data.tags)} tags, "
        f"{rep.data.summary()['users']} users.",
        f"- Replay in time order; test period = the last {cfg.test_fraction:.0%} of ratings "
        f"(from {split}): {counts['test_searches']} searches by {counts['test_users']} users; "
        f"queries: {kinds.get('tag', 0)} user tags, {kinds.get('genre', 0)} genre"
        f"{' + decade' if cfg.decade else ''}.",
        f"- Candidates: K={cfg.k} from BM25 over title, genres, decade and the tags applied so "
        f"far, + {cfg.popularity_weight} x log(1 + ratings so far); only movies rated before "
        f"the search. Retriever recall@{cfg.k}: {recall['all']:.3f} (warm {recall['warm']:.3f}, "
        f"cold {recall['cold']:.3f}); the searches it misses cannot be ranked by anyone and "
        f"are left out of the tables.",
        f"- Warm = the user had >= {cfg.warm_min} earlier ratings. History given to models: "
        f"the {cfg.history} most recently rated titles, newest first (the worker's window).",
        f"- Populations: {pops['full test period']} ranked test searches"
        f"{' (a seeded sample, --limit ' + str(meta['limit']) + ')' if meta.get('limit') else ''}"
        f"; cross-encoder systems score a seeded subset of {pops['cross subset']} of them, "
        f"where every system is scored again for a paired comparison.",
        f"- Learned models train on the training period only: the last "
        f"{counts['train_searches_kept']} training searches, of which those whose positive was "
        f"retrieved become lists. Budget: {meta['budget_text']}.",
    ]
    for t in meta.get("trained", []):
        how = "reused (identical lists and budget)" if t["reused"] else "trained in this run"
        lines.append(
            f"  - {t['name']}: `{t['version']}` ({t['variant'] or '?'} evaluated) on "
            f"{t['lists']} lists, {t['seconds']} s training + export, {how}"
            + (f"; final loss {t['report'].get('final_loss', float('nan')):.3f}"
               if t.get("report") else "")
        )
    seen = meta.get("seen")
    if seen:
        lines.append(
            f"- Already rated by the user: {seen['seen_share']:.1%} of the ranked searches' "
            f"candidates; {seen['seen_outside_history_share']:.1%} of those are older than the "
            f"{cfg.history}-title history the models see (MovieLens users never rate a movie "
            f"twice, so a seen candidate is never the positive).")
    lines.append("- Intervals: 95% bootstrap over searches (1000 rounds); Δ columns are "
                 "paired (same searches resampled for both systems).")
    return lines


def verdict(meta: Mapping[str, Any], tables: Sequence[Table]) -> list[str]:
    lines = []
    for t in tables:
        if t.segment not in ("all", "warm"):
            continue
        best = t.best()
        ref = t.row(t.reference)
        line = (f"- {t.population}, {t.segment}: best is **{best.system}** "
                f"(NDCG@10 {best.ndcg.mean:.4f}"
                + ("" if best.delta is None else
                   f", {_pct(best.relative)} vs {ref.system}") + ").")
        g = meta["goal"].get(f"{t.population}/{t.segment}", {})
        if "system" in g:
            row = t.row(g["system"])
            assert row.delta is not None or row.system == t.reference
            line += (f" Best learned personalized: {g['system']}, {_pct(g['relative'])} "
                     f"relative to {g['reference']} (goal +25%, intervals "
                     f"{'apart' if g['intervals_apart'] else 'overlapping'}): goal "
                     f"**{'met' if g['met'] else 'not met'}**.")
        lines.append(line)
    return lines


def kafka(meta: Mapping[str, Any]) -> list[str]:
    k = meta.get("kafka")
    if not k:
        return ["Not run this time (`--kafka`)."]
    on, off, d = k["online"][NDCG], k["offline"][NDCG], k["delta_ndcg"]
    return [
        f"{k['searches']} test searches (a seeded sample of the full population) replayed "
        f"through a local broker into one worker serving `{k['model_version']}` "
        f"({k['system']}) on {k['provider']}; {k['actions_published']} actions and "
        f"{k['catalog_published']} catalog items published first; {k['seconds']} s in all; "
        f"worker time per search p50 {k['worker_ms_p50']:.0f} ms; {k['degraded']} degraded.",
        "",
        "| | NDCG@10 [95% CI] | MRR [95% CI] |",
        "|---|---|---|",
        f"| online (recommendations topic) | {on['mean']:.4f} [{on['low']:.4f}, "
        f"{on['high']:.4f}] | {k['online'][MRR]['mean']:.4f} |",
        f"| offline (same model, same searches) | {off['mean']:.4f} [{off['low']:.4f}, "
        f"{off['high']:.4f}] | {k['offline'][MRR]['mean']:.4f} |",
        "",
        f"Paired online - offline NDCG@10: {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}];"
        f" the positive sat at the same rank in {k['same_positive_rank']} of {k['searches']} "
        f"searches. Intervals {'overlap: the figures agree' if k['agree'] else 'do NOT overlap'}.",
        *_batch_note(k.get("offline_batch_check") or {}),
    ]


def _batch_note(check: Mapping[str, Any]) -> list[str]:
    if not check:
        return []
    return [
        "",
        f"For scale: the same offline model ({check['variant']}), scoring one search per call "
        f"instead of {check['batch']}, puts the positive at the same rank in "
        f"{check['same_positive_rank']} of {check['searches']} searches. Where that is below "
        f"all, rankings depend on batch composition alone (dynamic int8 quantizes each batch "
        f"with its own scale), and the worker's micro-batches differ from the offline ones.",
    ]


def timings(meta: Mapping[str, Any]) -> list[str]:
    t = meta["timings_s"]
    lines = [f"- {name}: {seconds} s" for name, seconds in t.items() if name != "total"]
    lines.append(f"- **total: {t.get('total', 0)} s** on {os.cpu_count()} CPU cores (shared "
                 f"with other work while it ran: the wall time is an upper bound).")
    return lines


def sections(
    meta: Mapping[str, Any], rep: Replay, tables: Sequence[Table]
) -> dict[str, list[str]]:
    return {
        "Setup": setup(meta, rep),
        "Verdict": verdict(meta, tables),
        "results": [],
        "Through Kafka": kafka(meta),
        "Timings": timings(meta),
    }


__all__ = ["sections"]
