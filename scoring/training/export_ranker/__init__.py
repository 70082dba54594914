"""Export the learned rankers (`cross`, `embed`, `cascade`) as versions of the model registry.

Contract: docs/models.md. The parts, one module each:
  graphs     torch -> ONNX, int8 / fp16 conversion, export-time ONNX Runtime runs
  probes     the fixed probe lists, and the fp32 reference stored in each manifest
  gates      each variant against torch eager on the probe lists (fp32 must match)
  staging    temporary folder, manifest, atomic install
  cross, embed, cascade, hybrid   one export per kind
  untrained  the base rankers (`ensure_base_ranker`)
"""

from __future__ import annotations

from scoring.training.export_ranker.cascade import export_cascade
from scoring.training.export_ranker.cross import export_cross
from scoring.training.export_ranker.embed import export_embed
from scoring.training.export_ranker.hybrid import export_hybrid, load_hybrid
from scoring.training.export_ranker.probes import PROBE_LISTS
from scoring.training.export_ranker.untrained import ensure_base_ranker

__all__ = ["PROBE_LISTS", "ensure_base_ranker", "export_cascade", "export_cross", "export_embed",
           "export_hybrid", "load_hybrid"]
