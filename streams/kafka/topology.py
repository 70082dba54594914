"""The worker's topics on the cluster, checked and created before Faust starts.

Faust needs each table's changelog to have as many partitions as the topic that feeds it, and
a Kafka user expects the worker to adopt the partition count of input topics the site already
created rather than fail. So: existing input topics decide the count; missing topics of ours
are created with it up front (before a producer's first write auto-creates them with the
broker's default of one partition).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from state.tables import ITEM_TABLES, USER_TABLES, changelog_topic
from streams.kafka.connection import KafkaClients
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.kafka.connection import Admin

log = logging.getLogger(__name__)


# Ticks are worthless once handled; an hour covers any restart.
TICKS_RETENTION_MS = 3_600_000
# Re-keyed actions matter until the item statistics applied them (seconds, normally); a day
# covers a long outage of every worker (docs/architecture.md, "Item statistics").
ITEM_ACTIONS_RETENTION_MS = 86_400_000


class TopologyError(RuntimeError):
    """The cluster's topics cannot serve this worker as configured."""


def choose_partitions(existing: dict[str, int], settings: Settings) -> tuple[int, int]:
    """(partitions of the user-keyed topics, partitions of the catalog) for this cluster."""
    names = settings.topics
    user_counts = {t: existing[t] for t in (names.search, names.action) if t in existing}
    if len(set(user_counts.values())) > 1:
        raise TopologyError(
            f"{names.search} and {names.action} must have the same partition count "
            f"(state is co-partitioned by user_id); found {user_counts}"
        )
    partitions = next(iter(user_counts.values()), settings.partitions)
    # Per-user state and the worker's own per-partition topics must follow the input topics.
    # The item tables follow their repartition topic, which the worker creates with this count.
    ours = [changelog_topic(settings.app_id, table) for table in (*USER_TABLES, *ITEM_TABLES)]
    for topic in (*ours, settings.ticks_topic, names.samples, names.item_actions):
        if topic in existing and existing[topic] != partitions:
            raise TopologyError(
                f"{topic} has {existing[topic]} partitions but the input topics have "
                f"{partitions}; a worker cannot use it (state and samples are kept per "
                "partition of the input topics)"
            )
    catalog = existing.get(names.catalog, partitions)
    return partitions, catalog


async def _existing(admin: Admin) -> dict[str, int]:
    # list_topics first: a metadata request naming a missing topic may auto-create it.
    names = await admin.list_topics()
    described = await admin.describe_topics(names) if names else []
    return {t["topic"]: len(t["partitions"]) for t in described if not t.get("error_code")}


async def partition_counts(clients: KafkaClients, names: Sequence[str]) -> dict[str, int]:
    """Partition count of each of `names` that exists (a missing one is left out, never
    created): for the tools that read topics without joining the worker's group."""
    admin = clients.admin()
    await admin.start()
    try:
        existing = await _existing(admin)
    finally:
        await admin.close()
    return {name: existing[name] for name in names if name in existing}


async def partitions_of(clients: KafkaClients, topic: str) -> list[int]:
    """The partition ids of `topic`; [] when it does not exist (it is not created)."""
    counts = await partition_counts(clients, [topic])
    return list(range(counts.get(topic, 0)))


async def prepare(settings: Settings, clients: KafkaClients | None = None) -> Settings:
    """Settings with the partition counts the cluster dictates; missing topics created."""
    admin = (clients or KafkaClients(settings)).admin()
    await admin.start()
    try:
        existing = await _existing(admin)
        partitions, catalog = choose_partitions(existing, settings)
        names = settings.topics
        wanted = {
            names.search: partitions,
            names.action: partitions,
            names.recommendations: partitions,
            names.deadletter: partitions,
            # Samples go to the partition of the user's searches and actions: the worker that
            # owns it is the only writer, which is what makes them exactly-once.
            names.samples: partitions,
            settings.ticks_topic: partitions,
            names.catalog: catalog,
            names.models: 1,  # one key ("current"): one partition, read whole by every worker
            # Actions re-keyed by item_id: the owner of an item's partition is the only
            # writer of its statistics; they are published compacted and read whole by all.
            names.item_actions: partitions,
            names.item_stats: partitions,
        }
        # The tables' changelogs too, before Faust starts: Faust creates them itself, but a
        # worker that reads their metadata before the broker has them (seen on a loaded
        # machine) crashes its agents with PartitionsMismatch ("changelog has 0 partitions").
        changelogs = {changelog_topic(settings.app_id, table): partitions
                      for table in (*USER_TABLES, *ITEM_TABLES)}
        wanted |= changelogs
        configs: dict[str, dict[str, str]] = {
            **{name: {"cleanup.policy": "compact"} for name in changelogs},
            names.catalog: {"cleanup.policy": "compact"},
            names.models: {"cleanup.policy": "compact"},
            names.item_stats: {"cleanup.policy": "compact"},
            names.item_actions: {"retention.ms": str(ITEM_ACTIONS_RETENTION_MS)},
            settings.ticks_topic: {"retention.ms": str(TICKS_RETENTION_MS)},
            # Deliberately larger than the broker's ~1 MiB default: a bad record that the
            # input topics accepted is kept whole where it fits (streams/kafka/deadletter.py).
            names.deadletter: {"max.message.bytes": str(settings.deadletter_max_bytes)},
        }
        missing = [
            NewTopic(name, n, settings.replication_factor, topic_configs=configs.get(name, {}))
            for name, n in wanted.items() if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
            log.info("created topics %s", ", ".join(t.name for t in missing))
        deadletter_limit = await max_message_bytes(admin, names.deadletter)
    finally:
        await admin.close()
    if partitions != settings.partitions:
        log.info("input topics have %d partitions; using that, not %d", partitions,
                 settings.partitions)
    update: dict[str, object] = {"partitions": partitions, "catalog_partitions": catalog}
    if deadletter_limit is not None and deadletter_limit != settings.deadletter_max_bytes:
        log.info("%s takes records up to %d bytes (max.message.bytes); deadletter records are "
                 "cut to fit that, not %d", names.deadletter, deadletter_limit,
                 settings.deadletter_max_bytes)
        update["deadletter_max_bytes"] = deadletter_limit
    return settings.model_copy(update=update)


async def max_message_bytes(admin: Admin, topic: str) -> int | None:
    """The topic's effective max.message.bytes (its own or the broker default); None when it
    cannot be read (no DescribeConfigs permission): the setting is then trusted."""
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})])
        for response in responses:
            for resource in response.resources:
                error_code, entries = resource[0], resource[4]
                if error_code:
                    continue
                for entry in entries:
                    if entry[0] == "max.message.bytes" and entry[1] is not None:
                        return int(entry[1])
    except Exception as exc:  # an ACL or an old broker: not worth refusing to start over
        log.warning("could not read max.message.bytes of %s (%r)", topic, exc)
    return None


def prepare_sync(settings: Settings, clients: KafkaClients | None = None) -> Settings:
    return asyncio.run(prepare(settings, clients))
