"""Champion vs challenger: per-list figures, plain and IPS, and the promotion rule."""

from __future__ import annotations

import numpy as np

from contracts import LABELS, ShownItem, TrainingSample
from scoring.training.challenge import decide, evaluate_scores
from scoring.training.samples import CapturedList, build_lists

N_ITEMS = 6


def held_out(n: int, seed: int = 0) -> list[CapturedList]:
    """n lists of 6 items; the clicked item sits at a random shown position."""
    rng = np.random.default_rng(seed)
    samples = []
    for k in range(n):
        clicked = int(rng.integers(N_ITEMS))
        actions = ["click" if pos == clicked else "skipped" for pos in range(N_ITEMS)]
        samples.append(TrainingSample(
            request_id=f"r{k}", user_id=f"u{k % 7}", ts=k, query="q", model_version="m",
            items=[ShownItem(item_id=f"i{pos}", position=pos, shown_score=0.0,
                             label=LABELS[action], action=action)  # type: ignore[arg-type]
                   for pos, action in enumerate(actions)],
        ))
    return build_lists(samples, lambda item_id: f"item {item_id[1:]}")[0]


def scores_finding(lists: list[CapturedList], share: float, seed: int) -> list[list[float]]:
    """Scores that put the positive first in `share` of the lists, else last."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in lists:
        good = rng.random() < share
        rows.append([(1.0 if good else -1.0) * y + 0.01 * i
                     for i, y in enumerate(c.ranked.labels)])
    return rows


FLAT = np.ones(N_ITEMS)


def test_a_clearly_better_challenger_is_promoted() -> None:
    lists = held_out(300)
    champ = evaluate_scores("champ", lists, scores_finding(lists, 0.5, 1), FLAT)
    chall = evaluate_scores("chall", lists, scores_finding(lists, 0.8, 2), FLAT)
    decision = decide(champ, chall)
    assert decision.promote and decision.metric == "ips_ndcg@10"
    assert decision.delta.low > 0 and "lies above 0" in decision.reason
    summary = chall.summary()
    assert set(summary) == {"ndcg@10", "ips_ndcg@10", "mrr"}
    assert summary["ndcg@10"]["n"] == 300
    assert summary["ndcg@10"]["low"] <= summary["ndcg@10"]["mean"] <= summary["ndcg@10"]["high"]


def test_the_same_model_is_not_promoted_and_a_worse_one_is_called_worse() -> None:
    lists = held_out(300)
    same = scores_finding(lists, 0.6, 1)
    champ = evaluate_scores("champ", lists, same, FLAT)
    tie = decide(champ, evaluate_scores("chall", lists, same, FLAT))
    assert not tie.promote and "includes 0" in tie.reason
    worse = decide(champ, evaluate_scores("chall", lists, scores_finding(lists, 0.1, 2), FLAT))
    assert not worse.promote and worse.reason.startswith("challenger is worse")


def test_a_small_gain_must_clear_min_delta_and_always_promotes_regardless() -> None:
    lists = held_out(300)
    champ = evaluate_scores("champ", lists, scores_finding(lists, 0.5, 1), FLAT)
    chall = evaluate_scores("chall", lists, scores_finding(lists, 0.8, 2), FLAT)
    assert not decide(champ, chall, min_delta=0.5).promote
    forced = decide(chall, champ, rule="always")  # the worse one, forced
    assert forced.promote and forced.delta.mean < 0 and "always" in forced.reason


def test_ips_weights_make_finding_deep_clicks_count_more() -> None:
    lists = held_out(300)

    def finds(deep: bool) -> list[list[float]]:
        """Positive first only where it was shown deep (positions 3-5), or only high."""
        rows = []
        for c in lists:
            shown_deep = c.positions[int(np.argmax(c.ranked.labels))] >= 3
            sign = 1.0 if shown_deep == deep else -1.0
            rows.append([sign * y for y in c.ranked.labels])
        return rows

    propensity = np.array([1.0, 0.8, 0.6, 0.4, 0.3, 0.2])
    champ = evaluate_scores("champ", lists, finds(False), propensity)
    chall = evaluate_scores("chall", lists, finds(True), propensity)
    plain, weighted = decide(champ, chall, weighted=False), decide(champ, chall)
    # Clicks are spread evenly over the positions: plainly the two models tie...
    assert not plain.promote and abs(plain.delta.mean) < 0.1
    # ...but a deep click stands for searches whose relevant item went unseen: IPS counts it.
    assert weighted.promote and weighted.delta.low > 0.2
    # With a flat propensity both views agree exactly.
    flat = decide(evaluate_scores("a", lists, finds(False), FLAT),
                  evaluate_scores("b", lists, finds(True), FLAT))
    assert flat.deltas["ips_ndcg@10"] == flat.deltas["ndcg@10"]
