"""The trainer's Kafka-free parts: durations and times, the schedule, and the ModelUpdate that
a promotion or a rollback publishes (what workers validate: version, folder, manifest sha256)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from contracts import ModelUpdate, decode, encode
from scoring.base import MANIFEST_FILE, Manifest, ModelError, sha256_file
from streams.durations import format_duration, parse_duration, parse_time
from streams.learning import rollout as trainer
from streams.learning.rollout import flat_metrics, update_for
from streams.learning.schedule import schedule


@pytest.mark.parametrize(("text", "seconds"), [
    ("30m", 1800), ("1h30m", 5400), ("2d", 172800), ("90s", 90), ("45", 45), ("1.5h", 5400),
    ("500ms", 0.5), ("1m500ms", 60.5), ("10M", 600), ("1w", 604800),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "30x", "m30", "0m", "30m later", "5ms5", "-3s",
                                  "0"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_zero_only_where_allowed() -> None:
    assert parse_duration("0s", allow_zero=True) == 0
    with pytest.raises(ValueError, match="positive"):
        parse_duration("0s")


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "500ms"), (0.05, "50ms"), (4, "4s"), (4.5, "4.5s"), (600, "10m"), (5400, "1h30m"),
    (21600, "6h"), (90061, "1d1h1m1s"), (0, "0s"),
])
def test_durations_are_written_as_they_are_read(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text, allow_zero=True) == pytest.approx(seconds)


def test_times_are_epoch_ms_iso_or_a_duration_ago() -> None:
    now = 1_800_000_000_000
    assert parse_time("1700000000000", now) == 1_700_000_000_000
    assert parse_time("24h", now) == now - 86_400_000
    assert parse_time("2026-01-01T00:00:00Z", now) == 1_767_225_600_000
    assert parse_time("2026-01-01T00:00:00", now) == 1_767_225_600_000  # UTC when unsaid
    assert parse_time("2026-01-01T01:00:00+01:00", now) == 1_767_225_600_000
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday", now)


def test_schedule_runs_again_after_a_failure_and_stops_when_told() -> None:
    calls: list[int] = []

    def job() -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("broker away")  # the loop logs it and carries on

    assert schedule(0.01, job, max_runs=4) == 4
    assert calls == [0, 1, 2, 3]

    stop = threading.Event()
    seen: list[int] = []

    def stopper() -> None:
        seen.append(1)
        stop.set()

    assert schedule(3600, stopper, stop=stop) == 1  # does not wait an hour once stopped


def version_folder(root: Path, name: str, metrics: dict[str, object]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "head.onnx").write_bytes(b"graph bytes")
    Manifest(name="embed-minilm", version=name, files={"head.onnx": sha256_file(
        folder / "head.onnx")}, embedding_dim=384, max_length=64, kind="embed",
        created="2026-01-01T00:00:00+00:00", metrics=metrics).write(folder)
    return folder


def test_update_for_a_version_names_its_folder_and_manifest_checksum(tmp_path: Path) -> None:
    folder = version_folder(tmp_path, "embed-0123abcd", {
        "held_out": {"ndcg@10": {"mean": 0.9, "low": 0.8, "high": 0.95}}, "steps": 300,
        "untrained": True, "notes": "x",
    })
    update = update_for(folder)
    assert update.version == "embed-0123abcd"
    assert update.uri == str(folder.absolute())
    assert update.sha256 == sha256_file(folder / MANIFEST_FILE)
    assert update.metrics == {"ndcg@10": 0.9, "steps": 300.0}
    assert decode(encode(update), ModelUpdate) == update  # a valid record for the topic
    assert update_for(folder, {"x": 1.0}).metrics == {"x": 1.0}
    (folder / "head.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        update_for(folder)  # never announce a version that would be refused


async def test_rollback_republishes_an_earlier_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = version_folder(tmp_path, "embed-00000001", {})
    version_folder(tmp_path, "embed-00000002", {})
    sent: list[tuple[str, str, ModelUpdate]] = []

    async def publish(bootstrap: str, topic: str, update: ModelUpdate, replication: int) -> None:
        sent.append((bootstrap, topic, update))
        assert replication == 3

    monkeypatch.setattr(trainer, "publish_update", publish)
    update = await trainer.rollback("broker:9092", "p.models", tmp_path, "embed-00000001", 3)
    assert sent == [("broker:9092", "p.models", update)]
    assert update.version == "embed-00000001" and update.uri == str(old.absolute())
    assert update.sha256 == sha256_file(old / MANIFEST_FILE)
    with pytest.raises(ModelError, match="no version"):
        await trainer.rollback("broker:9092", "p.models", tmp_path, "embed-ffffffff")


def test_flat_metrics_keep_numbers_only() -> None:
    assert flat_metrics({"a": 1, "b": True, "c": "x", "held_out": {"mrr": {"mean": 0.5}}}) == {
        "a": 1.0, "mrr": 0.5}
