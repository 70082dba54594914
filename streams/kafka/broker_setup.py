"""What a local broker needs before its first start: the jars (fetched once per machine from
Maven Central by Maven) and formatted KRaft storage with a cluster id."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from streams.kafka.broker_config import (
    KAFKA_VERSION,
    POM_PATH,
    BrokerError,
    core_jar,
    generate_cluster_id,
    log_config_option,
    uses_log4j2,
)

log = logging.getLogger(__name__)


def maven_command(mvn: str, out: Path, version: str) -> list[str]:
    """The Maven call that copies Kafka `version`'s jars (and its logging backend) to `out`."""
    return [
        mvn, "-q", "-B", "-f", str(POM_PATH), "dependency:copy-dependencies",
        f"-DoutputDirectory={out}", "-DincludeScope=runtime",
        f"-Dkafka.version={version}",
        f"-Dkafka.logging={'log4j2' if uses_log4j2(version) else 'reload4j'}",
    ]


def ensure_jars(jars_dir: Path, version: str = KAFKA_VERSION) -> Path:
    """Fetch the broker's jars into ``jars_dir`` unless a complete copy is already there."""
    jar = core_jar(version)
    if (jars_dir / jar).is_file():
        return jars_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"Kafka jars are not in {jars_dir} and Maven (`mvn`) is not on PATH to fetch "
            "them; install Maven (e.g. `apt-get install maven`) or pass jars_dir= a directory "
            f"holding the Kafka {version} jars"
        )
    if not POM_PATH.is_file():
        raise BrokerError(f"{POM_PATH} is missing; the package is incomplete")
    parent = jars_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    # Fetch into a sibling temp dir and rename: a fetch that is interrupted never leaves a
    # directory that looks complete, and two concurrent fetches cannot mix their files.
    tmp = Path(tempfile.mkdtemp(prefix=f".{jars_dir.name}-", dir=parent))
    log.info(
        "fetching Kafka %s jars from Maven Central into %s (once per machine)",
        version,
        jars_dir,
    )
    started = time.monotonic()
    try:
        cmd = maven_command(mvn, tmp, version)
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-4000:]
            raise BrokerError(f"`{shlex.join(cmd)}` failed ({result.returncode}):\n{tail}")
        if not (tmp / jar).is_file():
            raise BrokerError(f"Maven finished but {jar} is not among the fetched jars")
        try:
            tmp.rename(jars_dir)
        except OSError as exc:
            # Another process finished first; its copy is as good as ours.
            if not (jars_dir / jar).is_file():
                raise BrokerError(
                    f"{jars_dir} exists but holds no {jar}; remove it and retry"
                ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "fetched %d jars in %.1f s",
        len(list(jars_dir.glob("*.jar"))),
        time.monotonic() - started,
    )
    return jars_dir


def cluster_id(data_dir: Path) -> str:
    """The cluster id stored in `data_dir` (or in formatted storage there), else a new one."""
    id_file = data_dir / "cluster.id"
    if id_file.is_file():
        return id_file.read_text().strip()
    meta = (data_dir / "logs") / "meta.properties"
    cid = None
    if meta.is_file():
        # Formatted storage whose id file was lost: the storage's id is the one that counts.
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                cid = line.split("=", 1)[1].strip()
    cid = cid or generate_cluster_id()
    id_file.write_text(cid + "\n")
    return cid


def format_storage(
    java: str, jars_dir: Path, data_dir: Path, props_file: Path, log4j_file: Path,
    version: str = KAFKA_VERSION,
) -> None:
    """Format the KRaft storage under `data_dir`/logs once (a no-op when formatted)."""
    if ((data_dir / "logs") / "meta.properties").is_file():
        return  # formatted before; skipping saves a JVM start
    cid = cluster_id(data_dir)
    log.info("formatting KRaft storage in %s (cluster id %s)", (data_dir / "logs"), cid)
    cmd = [
        java,
        log_config_option(version, log4j_file),
        "-cp",
        str(jars_dir / "*"),
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cid,
        "-c",
        str(props_file),
        "--ignore-formatted",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            f"formatting storage failed ({result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )
