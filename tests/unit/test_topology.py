"""The worker's own per-partition topics must follow the input topics' partition count."""

from __future__ import annotations

import pytest

from streams.kafka.topology import TopologyError, choose_partitions
from streams.settings import Settings


def test_existing_input_topics_decide_and_ours_must_agree() -> None:
    settings = Settings(app_id="app", partitions=4)
    names = settings.topics
    existing = {names.search: 3, names.action: 3, names.samples: 3,
                settings.ticks_topic: 3, "app-impressions-changelog": 3}
    assert choose_partitions(existing, settings) == (3, 3)
    for ours in (names.samples, settings.ticks_topic, "app-impressions-changelog"):
        with pytest.raises(TopologyError, match=ours):
            choose_partitions({**existing, ours: 4}, settings)


def test_the_ttl_must_cover_the_window() -> None:
    with pytest.raises(ValueError, match="impression_ttl_s"):
        Settings(attribution_window_s=60, impression_ttl_s=30)
