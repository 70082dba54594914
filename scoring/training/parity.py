"""The parity gate: an exported model is served only if ONNX Runtime agrees with torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scoring.base import ModelError
from scoring.encoder import OnnxEncoder
from scoring.training.reference import MAX_LENGTH, Reference, load_reference

PARITY_TOLERANCE = 1e-4
# Very different lengths on purpose: empty, one token, truncated (>128 tokens), non-ASCII.
PROBE_QUERY = "lightweight running shoes for marathon training"
PROBES = (
    "",
    "shoes",
    "Men's trail running shoe, waterproof, size 44",
    "Women's road running sneakers with carbon plate",
    "Stainless steel chef knife 20 cm",
    "Cast iron skillet, pre-seasoned, 12 inch",
    "Wireless noise cancelling headphones",
    "USB-C charging cable 2 m braided",
    "Children's picture book about dinosaurs",
    "Yoga mat non-slip 6 mm with carrying strap",
    "Compression socks for runners, pack of 3",
    "Crème brûlée torch — kitchen gadget für Köche",
    "GPS sports watch with heart rate monitor and marathon training plans",
    "Garden hose 30 m expandable",
    " ".join(["Ultralight cushioned running shoe with breathable mesh upper"] * 30),
    "Espresso machine 15 bar with milk frother",
)


class ParityError(ModelError):
    """ONNX Runtime and torch disagree on an export: it must not be served."""


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: float  # end to end: transformers+torch vs tokenizers+ORT, batched as served
    graph_max_abs_diff: float  # the same padded token ids through both graphs
    probes: int
    ranking_identical: bool
    tolerance: float = PARITY_TOLERANCE

    @property
    def passed(self) -> bool:
        worst = max(self.max_abs_diff, self.graph_max_abs_diff)
        return self.ranking_identical and worst <= self.tolerance

    def summary(self) -> str:
        return (
            f"parity max_abs_diff={self.max_abs_diff:.2e} graph={self.graph_max_abs_diff:.2e} "
            f"(tolerance {self.tolerance:.0e}), ranking identical={self.ranking_identical}, "
            f"{self.probes} probes"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_parity(
    model_dir: Path, texts: Sequence[str], query: str, *, reference: Reference | None = None
) -> ParityReport:
    """Compare the exported model in `model_dir` (CPU) with torch on `texts` and `query`."""
    reference = reference or load_reference()
    # A small batch size makes the serving path pad several differently sized batches.
    encoder = OnnxEncoder(model_dir, device="cpu", max_length=MAX_LENGTH, batch_size=4)
    probes = [query, *texts]
    want = reference.embed(probes)
    got = encoder.encode(probes)
    ids, mask = encoder.tokenize(probes)
    graph_diff = np.abs(reference.run_ids(ids, mask) - encoder.run_ids(ids, mask)).max()
    torch_rank = np.argsort(-(want[1:] @ want[0]), kind="stable")
    ort_rank = np.argsort(-(got[1:] @ got[0]), kind="stable")
    return ParityReport(
        max_abs_diff=float(np.abs(want - got).max()),
        graph_max_abs_diff=float(graph_diff),
        probes=len(probes),
        ranking_identical=bool(np.array_equal(torch_rank, ort_rank)),
    )
