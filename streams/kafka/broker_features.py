"""Finalizing a Kafka upgrade: after every node of a cluster runs the new release, its
metadata.version is raised to what the release supports (other features, such as the new
group protocol, are opt-in and left alone). Until then
the cluster keeps the old release's metadata version and can be rolled back; after it, it
cannot. `kafka-features.sh upgrade --release-version X` does this on a real cluster; the
local broker ships no Kafka scripts (only the jars from Maven Central), so this runs the same
Admin API calls from FinalizeFeatures.java with the broker's jars. Used by the upgrade test
(tests/integration/test_kafka39.py) and documented in docs/operations.md."""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.kafka.local_broker import LocalBroker

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("FinalizeFeatures.java")


@dataclass(frozen=True)
class FeatureLevel:
    name: str
    before: int  # finalized level before the call
    after: int  # finalized level after it
    supported: int  # the highest level the running release supports


def finalize_features(broker: LocalBroker, *, dry_run: bool = False,
                      timeout: float = 120) -> dict[str, FeatureLevel]:
    """Raise the metadata.version of `broker`'s cluster to the highest level its release
    supports (validated only with `dry_run`); every feature's levels before and after, by
    name."""
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java not found: Kafka's Admin client needs Java 17 or newer")
    cmd = [java, "-cp", f"{broker.jars_dir}/*", str(SOURCE), broker.bootstrap_servers]
    if dry_run:
        cmd.append("--dry-run")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"finalizing features failed: {done.stderr.strip()[-2000:]}")
    levels = {}
    for line in done.stdout.splitlines():
        name, before, after, supported = line.split()
        levels[name] = FeatureLevel(name, int(before), int(after), int(supported))
    log.info("feature levels: %s", {n: (f.before, f.after) for n, f in levels.items()})
    return levels


__all__ = ["FeatureLevel", "finalize_features"]
