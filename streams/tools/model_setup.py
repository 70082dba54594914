"""The model a worker is configured for, made available before it starts."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys

from scoring.kinds import ModelKind
from streams.settings import Settings

log = logging.getLogger(__name__)


def ensure_model(settings: Settings) -> None:
    """Make sure the configured model exists before a worker starts. The zero-shot baseline is
    exported on first use (in a child process, so the worker itself never imports torch); a
    learned kind must have been trained or exported on purpose."""
    from scoring import ZEROSHOT_MODEL, ModelError, ModelRegistry
    from scoring.base import MANIFEST_FILE

    if settings.scorer is ModelKind.ZEROSHOT:
        if not (settings.models_dir / ZEROSHOT_MODEL / MANIFEST_FILE).is_file():
            if importlib.util.find_spec("torch") is None:
                # The runtime image has no torch: its model was exported at build time.
                raise ModelError(
                    f"no zero-shot model in {settings.models_dir}, and exporting one needs the "
                    f"train extra (pip install 'streamrank[train]'; then `streamrank model "
                    f"export`); or set STREAMRANK_MODELS_DIR to a folder that has it"
                )
            log.info("zero-shot model missing in %s: exporting it (once)", settings.models_dir)
            subprocess.run([sys.executable, "-m", "streams.cli", "model", "export"], check=True)
        return
    registry = ModelRegistry(settings.models_dir)
    if settings.model_version is None and registry.latest(settings.scorer) is None:
        raise ModelError(
            f"no {settings.scorer} model in {settings.models_dir}: train one, or export an "
            f"untrained base with `streamrank model export --kind {settings.scorer}`"
        )
