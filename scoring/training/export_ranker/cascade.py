"""A cascade version: verified copies of an embed and a cross version in one folder.

Its variants are those both components ship, with paths relative to the cascade folder. Each
component keeps its own manifest and probe reference: serving decides each one's variant.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from scoring.base import Manifest, ModelError, load_verified
from scoring.kinds import ModelKind
from scoring.training.export_ranker.staging import build_manifest, install_version, staging


def export_cascade(
    embed_dir: Path,
    cross_dir: Path,
    out_dir: Path | None = None,
    *,
    k: int,
    models_dir: Path | None = None,
    metrics: Mapping[str, Any] | None = None,
    parent: str = "",
) -> Manifest:
    """Bundle the versions at `embed_dir` and `cross_dir`; the cross re-scores the top `k`."""
    if k < 0:
        raise ValueError("cascade k must be >= 0")
    parts = {ModelKind.EMBED.value: Path(embed_dir), ModelKind.CROSS.value: Path(cross_dir)}
    loaded = {role: load_verified(path) for role, path in parts.items()}
    for role, manifest in loaded.items():
        if manifest.kind != role:
            raise ModelError(f"{parts[role]}: a {manifest.kind!r} model is not a {role!r} one")
    started = time.perf_counter()
    with staging(out_dir, models_dir, ModelKind.CASCADE.value) as tmp:
        for role, path in parts.items():
            shutil.copytree(path, tmp / role)
            load_verified(tmp / role)
        common = set(loaded["embed"].variants) & set(loaded["cross"].variants)
        shipped = {
            v: {
                "files": {
                    f"{role}/{g}": f"{role}/{name}"
                    for role, m in loaded.items()
                    for g, name in m.variants[v]["files"].items()
                },
                "parity": {role: m.variants[v].get("parity", {}) for role, m in loaded.items()},
            }
            for v in sorted(common)
        }
        versions = {role: m.version for role, m in loaded.items()}
        key = json.dumps({**versions, "cascade_k": k}, sort_keys=True)
        manifest = build_manifest(
            tmp, kind=ModelKind.CASCADE.value,
            version_hash=hashlib.sha256(key.encode()).hexdigest(),
            dim=loaded["embed"].embedding_dim, max_length=loaded["cross"].max_length,
            opset=loaded["cross"].opset, spec_dict={"cascade_k": k}, shipped=shipped,
            metrics={**(metrics or {}), "components": versions}, parent=parent,
            started=started, parity={},
        )
        manifest = replace(manifest, components={role: role for role in parts})
        install_version(tmp, manifest, out_dir, models_dir, probe=False)
    return manifest


__all__ = ["export_cascade"]
