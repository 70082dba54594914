"""Where a ranker export is built and how it is installed as a registry version.

Every export writes a private temporary sibling folder, gates it, writes a manifest covering
every file (with the probe reference serving checks variants against) and only then renames
it into place: a reader never sees half a version.

Where a version goes: `out_dir` if given, else `models_dir/<version>` (exactly one of them).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scoring.base import MANIFEST_FILE, Manifest, load_verified, sha256_file
from scoring.training.export import install_folder, remove_stale_temps, toolchain_versions
from scoring.training.export_ranker.probes import with_probe_reference

log = logging.getLogger(__name__)


@contextlib.contextmanager
def staging(out_dir: Path | None, models_dir: Path | None, kind: str) -> Iterator[Path]:
    """A private temporary folder beside the destination, removed unless installed."""
    if (out_dir is None) == (models_dir is None):
        raise ValueError("give exactly one of out_dir and models_dir")
    root = Path(out_dir).parent if out_dir is not None else Path(models_dir or ".")
    name = Path(out_dir).name if out_dir is not None else kind
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root / name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the worker may run as another user
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a no-op once installed (renamed away)


def install_version(
    tmp: Path,
    manifest: Manifest,
    out_dir: Path | None,
    models_dir: Path | None,
    *,
    probe: bool = True,
) -> Path:
    """Store the probe reference (unless `probe` is False: a cascade's components carry
    theirs), write the manifest, verify the folder as readers will, then move it into place."""
    if probe:
        manifest = with_probe_reference(tmp, manifest)
    manifest.write(tmp)
    load_verified(tmp)  # what readers will check, checked before anyone can see it
    target = Path(out_dir) if out_dir is not None else Path(models_dir or ".") / manifest.version
    install_folder(tmp, target)
    log.info("installed %s at %s", manifest.version, target)
    return target


def build_manifest(
    tmp: Path,
    *,
    kind: str,
    version_hash: str,
    dim: int,
    max_length: int,
    opset: int,
    spec_dict: Mapping[str, Any],
    shipped: Mapping[str, Any],
    metrics: Mapping[str, Any],
    parent: str,
    started: float,
    parity: Mapping[str, Any],
) -> Manifest:
    """The manifest of the files now in `tmp` (sub-folders' manifests included)."""
    files = {
        p.relative_to(tmp).as_posix(): sha256_file(p)
        for p in sorted(tmp.rglob("*"))
        # Sub-folders' manifests are files of this version too; only our own is left out.
        if p.is_file() and not (p.name == MANIFEST_FILE and p.parent == tmp)
    }
    return Manifest(
        name=f"{kind}-minilm",
        version=f"{kind}-{version_hash[:8]}",
        files=files,
        embedding_dim=dim,
        max_length=max_length,
        kind=kind,
        opset=opset,
        parity=dict(parity),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions=toolchain_versions(),
        export_seconds=round(time.perf_counter() - started, 2),
        features=dict(spec_dict),
        variants=dict(shipped),
        metrics=dict(metrics),
        parent=parent,
    )


__all__ = ["build_manifest", "install_version", "staging"]
