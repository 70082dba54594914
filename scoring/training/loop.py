"""The listwise training loop shared by both rankers: loss, optimizer schedule, steps.

Loss: ListNet top-1, the softmax cross-entropy between a list's scores and the target
distribution gain/sum(gain), gain = 2**label - 1. AdamW with linear warmup then linear decay.
A run is reproducible: same data, seed and budget give the same weights (on the same device).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from scoring.training.data import TrainingList
from scoring.training.models import MASKED

log = logging.getLogger(__name__)

StepHook = Callable[[int, float], None]  # (step, loss) after each optimizer step: progress bars


@dataclass(frozen=True)
class TrainReport:
    steps: int
    seconds: float
    final_loss: float  # mean of the last 10% of steps (one step is noisy)
    loss_curve: list[float] = field(repr=False)
    device: str
    examples_seen: int  # lists
    pairs_seen: int  # scored candidates

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["loss_curve"]
        return data


def listnet_loss(
    scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over lists of the ListNet top-1 loss; `mask` (1 = real candidate) hides padding."""
    gains = torch.pow(2.0, labels) - 1.0
    if mask is not None:
        gains = gains * mask
        scores = scores + (1.0 - mask) * MASKED
    target = gains / gains.sum(-1, keepdim=True).clamp_min(1e-12)
    return -(target * torch.log_softmax(scores, dim=-1)).sum(-1).mean()


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    was = torch.are_deterministic_algorithms_enabled()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # dropout draws from the global generator
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def batches(n: int, size: int, seed: int) -> Iterator[list[int]]:
    """Endless shuffled epochs of list indices."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for start in range(0, n - size + 1 if n >= size else 1, size):
            yield order[start : start + size]


def optimizer(
    groups: list[dict[str, Any]], steps: int, warmup: int | None, weight_decay: float
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay)
    warm = max(1, steps // 10 if warmup is None else warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def run_steps(
    step_loss: Callable[[list[TrainingList]], tuple[torch.Tensor, int]],
    params: list[torch.nn.Parameter],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LambdaLR,
    lists: list[TrainingList],
    *,
    steps: int,
    per_step: int,
    seed: int,
    device: str,
    progress: bool,
    on_step: StepHook | None = None,
) -> TrainReport:
    started = time.perf_counter()
    curve: list[float] = []
    seen = pairs = 0
    every = max(1, steps // 10)
    for step, idx in zip(range(steps), batches(len(lists), per_step, seed), strict=False):
        batch = [lists[i] for i in idx]
        loss, n_pairs = step_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        curve.append(float(loss.detach()))
        seen, pairs = seen + len(batch), pairs + n_pairs
        if on_step is not None:
            on_step(step, curve[-1])
        if progress and (step + 1) % every == 0:
            log.info(
                "step %d/%d loss %.4f lr %.2e", step + 1, steps, curve[-1], sched.get_last_lr()[0]
            )
    tail = curve[-max(1, steps // 10) :]
    return TrainReport(
        steps=steps,
        seconds=round(time.perf_counter() - started, 2),
        final_loss=float(np.mean(tail)) if tail else float("nan"),
        loss_curve=curve,
        device=device,
        examples_seen=seen,
        pairs_seen=pairs,
    )


__all__ = [
    "StepHook",
    "TrainReport",
    "batches",
    "deterministic",
    "listnet_loss",
    "optimizer",
    "run_steps",
]
