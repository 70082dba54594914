"""Topic names: one configurable prefix, the same names for the worker, tools and tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicNames:
    prefix: str = "streamrank."

    @property
    def search(self) -> str:
        return f"{self.prefix}events.search"

    @property
    def action(self) -> str:
        return f"{self.prefix}events.action"

    @property
    def catalog(self) -> str:
        return f"{self.prefix}catalog"

    @property
    def recommendations(self) -> str:
        return f"{self.prefix}recommendations"

    @property
    def samples(self) -> str:
        return f"{self.prefix}samples"

    @property
    def models(self) -> str:
        return f"{self.prefix}models"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}deadletter"

    @property
    def item_actions(self) -> str:
        """Internal: actions re-keyed by item_id (a repartition, short retention)."""
        return f"{self.prefix}item-actions"

    @property
    def item_stats(self) -> str:
        """Compacted: each item's behaviour statistics, replicated by every worker."""
        return f"{self.prefix}item-stats"

    def all(self) -> dict[str, str]:
        return {
            name: getattr(self, name)
            for name in (
                "search", "action", "catalog", "recommendations", "samples", "models",
                "deadletter", "item_actions", "item_stats",
            )
        }
