"""The report of a `streamrank train` run: markdown, PNG plots, and the history of runs.

Each run gets a folder `<report_dir>/<UTC time>/` with report.md, outcome.json, loss.png (the
training loss) and metrics.png (NDCG@10 and MRR of champion and challenger for every run in
the history, labelled by version). `<report_dir>/history.jsonl` keeps one line per run, so
the plot shows how the models evolved.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt
import numpy as np

from scoring.training.finetune import Outcome

log = logging.getLogger(__name__)

HISTORY = "history.jsonl"
FIGURE_NAMES = ("ndcg@10", "ips_ndcg@10", "mrr")


def append_history(report_dir: Path, outcome: Outcome) -> list[dict[str, Any]]:
    """Add this run to the history file; returns every run recorded, oldest first."""
    report_dir.mkdir(parents=True, exist_ok=True)
    entry = {
        "started": outcome.started,
        "champion": outcome.champion,
        "challenger": outcome.challenger,
        "promoted": outcome.promoted,
        "reason": outcome.reason,
        "metrics": outcome.metrics,
        "held_out_lists": outcome.data.get("held_out_lists", 0),
    }
    with open(report_dir / HISTORY, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    return read_history(report_dir)


def read_history(report_dir: Path) -> list[dict[str, Any]]:
    path = report_dir / HISTORY
    if not path.is_file():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s: skipping a malformed line", path)  # e.g. a crash mid-write
    return runs


def plot_loss(curve: Sequence[float], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    steps = np.arange(1, len(curve) + 1)
    ax.plot(steps, curve, color="0.75", linewidth=0.8, label="per step")
    if len(curve) >= 10:
        width = max(5, len(curve) // 20)
        smooth = np.convolve(curve, np.ones(width) / width, mode="valid")
        ax.plot(steps[width - 1 :], smooth, color="C0", label=f"mean of {width}")
    ax.set_xlabel("step")
    ax.set_ylabel("ListNet loss")
    ax.set_title("training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_metrics(runs: Sequence[dict[str, Any]], path: Path) -> None:
    """Champion and challenger per run (x: run, labelled by the versions), 95% intervals."""
    runs = [r for r in runs if r.get("metrics")]
    fig, axes = plt.subplots(1, len(FIGURE_NAMES), figsize=(5 * len(FIGURE_NAMES), 4),
                             squeeze=False)
    x = np.arange(len(runs))
    labels = [f"{r['started'][5:16]}\n{r['champion']}\n→ {r['challenger'] or 'not promoted'}"
              for r in runs]
    for ax, name in zip(axes[0], FIGURE_NAMES, strict=True):
        for role, color, dx in (("champion", "0.45", -0.08), ("challenger", "C1", 0.08)):
            got = [r["metrics"].get(role, {}).get(name) for r in runs]
            xs = [xi + dx for xi, g in zip(x, got, strict=True) if g]
            mean = np.array([g["mean"] for g in got if g])
            err = np.array([[g["mean"] - g["low"], g["high"] - g["mean"]] for g in got if g])
            if len(xs):
                ax.errorbar(xs, mean, yerr=err.T, fmt="o", color=color, capsize=3, label=role)
        for xi, r in zip(x, runs, strict=True):
            if r["promoted"]:
                ax.axvspan(xi - 0.3, xi + 0.3, color="C2", alpha=0.08)
        ax.set_xticks(x, labels, fontsize=6)
        ax.set_xlim(-0.5, max(len(runs), 1) - 0.5)
        ax.set_title(f"{name} on held-out lists (green: promoted)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(interval: dict[str, float] | None) -> str:
    if not interval:
        return "-"
    return f"{interval['mean']:.4f} [{interval['low']:.4f}, {interval['high']:.4f}]"


def render(outcome: Outcome, command: str = "") -> str:
    verdict = (f"**promoted** `{outcome.challenger}` (from `{outcome.parent or 'base model'}`)"
               if outcome.promoted else "**not promoted**")
    lines = [
        f"# Training run {outcome.started}",
        "",
        f"- champion: `{outcome.champion}`",
        f"- challenger: {verdict}",
        f"- why: {outcome.reason}",
    ]
    if command:
        lines.append(f"- command: `{command}`")
    lines += ["", "## Data", "", "| | |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in outcome.data.items()]
    if outcome.metrics:
        deltas = (outcome.decision or {}).get("deltas", {})
        lines += [
            "", "## Held-out lists (95% bootstrap intervals)", "",
            "| figure | champion | challenger | gain (paired) |", "|---|---|---|---|",
        ]
        for name in FIGURE_NAMES:
            lines.append(
                f"| {name} | {_fmt(outcome.metrics['champion'].get(name))} | "
                f"{_fmt(outcome.metrics['challenger'].get(name))} | {_fmt(deltas.get(name))} |"
            )
        lines += ["", f"Decision metric: `{(outcome.decision or {}).get('metric')}`; "
                  f"rule: `{outcome.plan.get('rule')}` (min gain {outcome.plan.get('min_delta')})."]
    if outcome.propensity:
        lines += ["", "## Examination propensity by shown position (relative to the top)", "",
                  "| position | " + " | ".join(str(i) for i in range(len(outcome.propensity)))
                  + " |",
                  "|---|" + "---|" * len(outcome.propensity),
                  "| propensity | " + " | ".join(f"{p:.2f}" for p in outcome.propensity) + " |"]
    if outcome.train:
        lines += ["", "## Training", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in outcome.train.items()]
        spent = ", ".join(f"{k} {v:.0f}s" for k, v in outcome.seconds.items())
        lines += [f"| run time | {spent} |", "", "![loss](loss.png)"]
    lines += ["", "![metrics by version](metrics.png)", ""]
    if outcome.promoted:
        lines += [f"Roll back: `streamrank model rollback {outcome.champion}`", ""]
    return "\n".join(lines)


def write_report(report_dir: Path, outcome: Outcome, command: str = "") -> Path:
    """The run's folder with report.md, outcome.json and the plots; appends the history."""
    stamp = outcome.started.replace(":", "").replace("+0000", "Z")
    folder = report_dir / stamp
    n = 1
    while folder.exists():  # two runs in one second (a short --every, tests)
        n += 1
        folder = report_dir / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    runs = append_history(report_dir, outcome)
    (folder / "outcome.json").write_text(json.dumps(outcome.as_dict(), indent=1) + "\n")
    if outcome.loss_curve:
        plot_loss(outcome.loss_curve, folder / "loss.png")
    plot_metrics(runs, folder / "metrics.png")
    (folder / "report.md").write_text(render(outcome, command), encoding="utf-8")
    log.info("report: %s", folder / "report.md")
    return folder


__all__ = ["append_history", "plot_loss", "plot_metrics", "read_history", "render",
           "write_report"]
