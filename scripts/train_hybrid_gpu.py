#!/usr/bin/env python3
"""The hybrid ranker with its whole text encoder fine-tuned end to end: the large budget a
2-core CPU cannot afford (there, `streamrank eval movielens` fine-tunes the top layer only).

On a MovieLens copy, exactly as the evaluation: replay, behaviour state and features
(evaluation/behaviour_replay.py), training lists of every rankable training search, then
fit_hybrid with finetune_layers="all" on the GPU: the head trains on frozen embeddings first
(early stopping on the time-based validation split), then every encoder layer and the head
train together for --steps steps of --lists lists (kept only if validation improves). The
tuned version is exported (parity gate, neighbours) into --models-dir, and test NDCG@10 of
the frozen and the tuned model is printed and written to --out as JSON.

    python scripts/train_hybrid_gpu.py --data ../shared/data/movielens/ml-latest-small \\
        --models-dir var/gpu/models --steps 3000 --lists 32 --device cuda

About 4 GB of GPU memory at 32 lists per step (~2,000 texts of up to 64 tokens).
`--device cpu --steps 2 --epochs 1` checks the script anywhere (minutes).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from evaluation import movielens
from evaluation.behaviour_replay import replay_behaviour
from evaluation.hybrid_runs import HybridBudget, HybridRuns
from evaluation.protocol import ProtocolConfig, replay
from scoring.behaviour_spec import BehaviourSpec
from scoring.quality import ndcg_at
from scoring.training.export_ranker import export_hybrid
from scoring.training.hybrid_fit import HybridConfig, HybridFit, fit_hybrid

log = logging.getLogger("train_hybrid_gpu")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a MovieLens folder")
    p.add_argument("--models-dir", type=Path, default=Path("var/gpu/models"))
    p.add_argument("--out", type=Path, default=Path("var/gpu/train_hybrid_gpu.json"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=3000, help="encoder fine-tuning steps")
    p.add_argument("--lists", type=int, default=32, help="lists per fine-tuning step")
    p.add_argument("--lr", type=float, default=2e-5, help="encoder learning rate")
    p.add_argument("--epochs", type=int, default=8, help="head epochs before fine-tuning")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=8, help="CPU threads (replay, head)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rep = replay(movielens.load(args.data, tie_seed=args.seed), ProtocolConfig(seed=args.seed),
                 progress=False)
    behaviour = replay_behaviour(rep, BehaviourSpec(), progress=False)
    runs = HybridRuns(rep, behaviour, HybridBudget(), args.models_dir, args.models_dir / "cache")
    train = runs.lists([s for s in rep.train if s.positive is not None])
    test_searches = rep.segments()["all"]
    test = runs.lists(test_searches)
    config = HybridConfig(epochs=args.epochs, seed=args.seed, finetune_steps=args.steps,
                          finetune_lists=args.lists, finetune_lr=args.lr,
                          finetune_layers="all", device=args.device, threads=args.threads)
    fit = fit_hybrid(train, n_features=behaviour.spec.size, config=config)

    def test_ndcg(model_fit: HybridFit) -> float:
        scores = model_fit.scores(test)
        return float(np.mean([ndcg_at(x, s.labels, 10)
                              for x, s in zip(scores, test_searches, strict=True)]))

    result = {"finetune": fit.report.get("finetune"), "test_ndcg": test_ndcg(fit),
              "test_ndcg_frozen": test_ndcg(fit.frozen) if fit.frozen else None,
              "train_lists": len(train), "test_searches": len(test)}
    manifest = export_hybrid(fit.encoder, fit.model, behaviour.spec, behaviour.neighbours,
                             models_dir=args.models_dir,
                             metrics={"training": fit.report, "test": result})
    result |= {"version": manifest.version, "seconds": round(time.perf_counter() - started)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
