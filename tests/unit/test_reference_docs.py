"""docs/events.md and docs/configuration.md match the code (regenerate: `streamrank docs`)."""

from __future__ import annotations

from pathlib import Path

from contracts import TopicNames
from contracts.events import CONTRACTS
from streams.settings import Settings
from streams.tools.reference_docs import stale

ROOT = Path(__file__).resolve().parents[2]


def test_generated_docs_are_current() -> None:
    assert not stale(ROOT), "docs are stale: run `streamrank docs` and commit the result"


def test_every_topic_and_event_field_is_in_the_docs() -> None:
    events = (ROOT / "docs" / "events.md").read_text()
    for topic in TopicNames().all().values():
        assert f"`{topic}`" in events, topic
    for name, model in CONTRACTS.items():
        section = events.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for field in model.model_fields:
            assert f"| `{field}` |" in section, f"{name}.{field}"


def test_every_setting_is_in_the_configuration_docs() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for field in Settings.model_fields:
        assert f"`STREAMRANK_{field.upper()}`" in text, field
