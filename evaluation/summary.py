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
    b = meta.get("behaviour", {})
    spec = meta.get("spec", {})
    lines = [
        f"- Data: `{rep.data.path}` ({rep.data.layout}): {counts['ratings']} ratings, "
        f"{len(rep.data.movies)} movies, {len(rep.data.tags)} tags, "
        f"{rep.data.summary()['users']} users. Ratings of the same second are replayed in a "
        f"seeded random order (seed {cfg.seed}), not file order.",
        f"- Replay in time order; test period = the last {cfg.test_fraction:.0%} of ratings "
        f"(from {split}): {counts['test_searches']} searches by {counts['test_users']} users; "
        f"queries: {kinds.get('tag', 0)} user tags, {kinds.get('genre', 0)} genre"
        f"{' + decade' if cfg.decade else ''}.",
        f"- Candidates: K={cfg.k} from BM25 over title, genres, decade and the tags applied so "
        f"far, + {cfg.popularity_weight} x log(1 + ratings so far); only movies rated before "
        f"the search. Retriever recall@{cfg.k}: {recall['all']:.3f} (warm {recall['warm']:.3f}, "
        f"cold {recall['cold']:.3f}); the searches it misses cannot be ranked by anyone: the "
        f"tables rank the others and also give NDCG@10 over all test searches with misses 0.",
        f"- Warm = the user had >= {cfg.warm_min} earlier ratings. History texts given to "
        f"models: the {cfg.history} most recently rated titles, newest first.",
        f"- Behaviour state (docs/evaluation.md): every rating is an action (grade 3/2/1 = "
        f"purchase/add_to_cart/click) applied in order to the worker's own state code over "
        f"in-memory stores: each user's retained interaction set (at most "
        f"{spec.get('retained', '?')} items) and every item's statistics; the "
        f"{len(spec.get('names', []))} features of each search are built from the state "
        f"before its rating, by the serving builder. Co-occurrence neighbours "
        f"(top {spec.get('neighbours', '?')} per movie): a snapshot every "
        f"{b.get('refresh', '?')} training ratings, the last (at the split) frozen for the "
        f"test period and shipped with the model ({b.get('neighbour_items', 0)} movies, "
        f"{b.get('neighbour_edges', 0)} edges). Builder time per search p50 "
        f"{b.get('build_ms_p50', 0):.2f} ms, p99 {b.get('build_ms_p99', 0):.2f} ms here.",
        f"- Populations: {pops['full test period']} ranked test searches"
        f"{' (a seeded sample, --limit ' + str(meta['limit']) + ')' if meta.get('limit') else ''}"
        + (f"; cross-encoder systems score a seeded subset of {pops['cross subset']} of them."
           if pops.get("cross subset") else "."),
    ]
    learned = meta.get("learned") or {}
    if learned:
        lines.append(
            f"- Learned rankers train on the training period only: {learned['train_lists']} "
            f"lists (every training search whose positive was retrieved); validation = the "
            f"latest 10% of them by time. Budget: {learned['budget_text']}.")
    if meta.get("budget_text"):
        lines.append(f"- Text-only kinds: {meta['budget_text']}.")
    for t in meta.get("trained", []):
        how = "reused (identical lists and budget)" if t["reused"] else "trained in this run"
        lines.append(f"  - {t['name']}: `{t['version']}` ({t['variant'] or '?'} evaluated) on "
                     f"{t['lists']} lists, {t['seconds']} s training + export, {how}")
    rules = meta.get("rule_validation_ndcg")
    if rules:
        lines.append("- Rule variants picked on validation NDCG@10: " + ", ".join(
            f"{name.removesuffix(', seen demoted')} {value:.4f}" for name, value in rules.items())
            + ".")
    seen = meta.get("seen")
    if seen:
        lines.append(
            f"- Already rated by the user: {seen['seen_share']:.1%} of the ranked searches' "
            f"candidates; {seen['seen_outside_history_share']:.1%} of those are older than the "
            f"{cfg.history}-title history (MovieLens users never rate a movie twice, so a seen "
            f"candidate is never the positive: demoting them is free for the rules).")
    return lines


def verdict(meta: Mapping[str, Any], tables: Sequence[Table]) -> list[str]:
    lines = []
    for t in tables:
        if t.segment not in ("all", "warm"):
            continue
        best = t.best()
        line = f"- {t.population}, {t.segment}: best is **{best.system}** (NDCG@10 " \
               f"{best.ndcg.mean:.4f})."
        g = meta["goal"].get(f"{t.population}/{t.segment}", {})
        if "system" in g:
            row = t.row(g["system"])
            d = row.delta
            line += (f" {g['system']} vs the best non-learned system ({g['reference']}): "
                     f"{_pct(g['relative'])}"
                     + ("" if d is None else f", paired Δ {d.mean:+.4f} [{d.low:+.4f}, "
                        f"{d.high:+.4f}]")
                     + f"; product goal (>= +25%, interval above 0): "
                     f"**{'met' if g['met'] else 'not met'}**.")
            rules = [r for r in t.rows if not r.learned and not r.diagnostic]
            above = all((row.deltas.get("best non-learned") is not None and
                         t.pair(row.system, r.system).low > 0) or r.system == row.system
                        for r in rules)
            pop = row.deltas.get("popularity, seen demoted")
            if pop is not None:
                line += (f" vs popularity, seen demoted: "
                         f"{_pct(row.relative['popularity, seen demoted'])} (goal >= +30%). "
                         f"Paired interval above 0 against every non-learned system: "
                         f"**{'yes' if above else 'no'}**.")
            gbdt = "LightGBM LambdaMART"
            if gbdt in t.scored and row.system != gbdt:
                p = t.pair(row.system, gbdt)
                line += (f" vs {gbdt}: {p.mean:+.4f} [{p.low:+.4f}, {p.high:+.4f}].")
        lines.append(line)
    return lines


def learned(meta: Mapping[str, Any], tables: Sequence[Table]) -> list[str]:
    info = meta.get("learned") or {}
    if not info:
        return ["No learned behaviour ranker in this run (`--kinds`)."]
    seeds = info.get("seeds", [])
    t = next((t for t in tables if t.segment == "all"), None)
    lines = []
    if t is not None:
        per_seed = [t.row(f"hybrid (seed {i}, torch)").ndcg.mean for i in range(len(seeds))
                    if f"hybrid (seed {i}, torch)" in t.scored]
        if per_seed:
            mean = sum(per_seed) / len(per_seed)
            sd = (sum((x - mean) ** 2 for x in per_seed) / max(1, len(per_seed) - 1)) ** 0.5
            lines.append(f"- Hybrid over {len(per_seed)} seeds (torch): test NDCG@10 mean "
                         f"{mean:.4f}, sd {sd:.4f} ({', '.join(f'{x:.4f}' for x in per_seed)}); "
                         f"served: seed {info.get('served_seed', 0)}, the best on validation, "
                         "exported to ONNX. Paired differences to the served hybrid:")
        for r in t.rows:
            if r.diagnostic and r.system.startswith("hybrid") and "hybrid" in t.scored:
                p = t.pair(r.system, "hybrid")
                lines.append(f"  - {r.system} - hybrid (served): {p.mean:+.4f} "
                             f"[{p.low:+.4f}, {p.high:+.4f}]")
    for i, rep in enumerate(seeds):
        ft = rep.get("finetune")
        lines.append(f"- Seed {i}: {rep.get('train_lists')} training lists, validation NDCG@10 "
                     f"per epoch {rep.get('validation_ndcg')}, best epoch {rep.get('best_epoch')}"
                     f", {rep.get('seconds')} s"
                     + ("" if not ft else f"; top-layer fine-tune {ft['steps']} steps in "
                        f"{ft['seconds']} s: validation {ft['validation_ndcg_frozen']:.4f} -> "
                        f"{ft['validation_ndcg_tuned']:.4f}, "
                        f"{'kept' if ft['kept'] else 'discarded'}") + ".")
    for g in meta.get("gbdt", []):
        lines.append(f"- LightGBM seed {g['seed']}: {g['best_iteration']} trees, validation "
                     f"NDCG@10 {g['validation_ndcg']:.4f}, {g['seconds']} s; top gain: "
                     + ", ".join(f"{k} {v:.2f}" for k, v in list(g["top_gain"].items())[:6]))
    equal = meta.get("served_features_equal")
    if equal:
        lines.append(f"- The served hybrid (ONNX, built its own features from the behaviour "
                     f"inputs with its shipped spec and neighbours) used exactly the replay's "
                     f"feature matrix in {equal['equal']} of {equal['searches']} searches.")
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
        "Learned rankers": learned(meta, tables),
        "Through Kafka": kafka(meta),
        "Timings": timings(meta),
    }


__all__ = ["sections"]
