"""Training-side code: export (and later fine-tuning). The only place torch is imported.

Serving never imports this package; `streamrank model export` does.
"""

from scoring.training.export import ensure_encoder, export_encoder
from scoring.training.parity import ParityError, ParityReport, measure_parity

__all__ = ["ParityError", "ParityReport", "ensure_encoder", "export_encoder", "measure_parity"]
