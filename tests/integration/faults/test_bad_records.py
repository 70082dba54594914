"""A fuzz of bad records on every input topic: each ends answered, applied or in the
deadletter topic with the expected reason, the worker keeps answering good traffic, the
deadletter counters match what was sent, and memory stays bounded."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaError

from contracts import ActionEvent, Candidate, Item, SearchEvent, encode
from tests.integration.faults.harness import (
    FaultDeployment,
    own_broker,
    read_topic,
    rss_mb,
    wall_ms,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

# The size a default broker accepts and the worker used to lose (Faust's 1,000,000-byte
# producer limit made the deadletter send fail and crashed the agent).
OVERSIZE = 1_000_108
DEEP = b"[" * 40 + b"1" + b"]" * 40
VERY_DEEP = b"[" * 3000 + b"]" * 3000


def search(user: str, rid: str, **change: Any) -> dict[str, Any]:
    return {"event_id": f"e-{rid}", "request_id": rid, "user_id": user, "ts": wall_ms(),
            "query": "warm socks", "candidates": [{"item_id": "a"}, {"item_id": "b"}], **change}


def action(user: str, n: int, **change: Any) -> dict[str, Any]:
    return {"event_id": f"a-{user}-{n}", "user_id": user, "ts": wall_ms(), "item_id": f"i{n}",
            "action": "click", **change}


def item(item_id: str, **change: Any) -> dict[str, Any]:
    return {"item_id": item_id, "title": "Wool socks", **change}


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def common(make: Any, key: str) -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(kind, key, value, expected outcome) shared by every topic: outcome is a deadletter
    reason, or "ok" (answered / applied)."""
    k = key.encode()
    good = dumps(make())
    return [
        ("oversize", k, b'{"x": "' + b"x" * (OVERSIZE - 9) + b'"}', "too_large"),
        ("deep nesting", k, good[:-1] + b', "extra": ' + DEEP + b"}", "too_deep"),
        ("nesting past the parser", k, VERY_DEEP, "not_json"),
        ("invalid utf-8", k, b'{"a": "\xff\xfe"}', "not_json"),
        ("lone surrogate", k, b'{"a": "\\udc00"}', "not_json"),
        ("NaN", k, good[:-1] + b', "nan": NaN}', "not_json"),
        ("Infinity", k, good[:-1] + b', "inf": Infinity}', "not_json"),
        ("number overflowing a double", k, good[:-1] + b', "big": 1e999}', "not_json"),
        ("not json", k, b"hello", "not_json"),
        ("json array", k, b"[" + good + b"," + good + b"]", "not_object"),
        ("json null", k, b"null", "not_object"),
        ("json string", k, b'"text"', "not_object"),
        ("empty value", k, b"", "empty"),
        ("null key", None, good, "key_missing"),
        ("mismatched key", b"somebody-else", good, "key_mismatch"),
        ("missing fields", k, b"{}", "invalid"),
        ("duplicate json keys, last valid", k, good[:-1] + b', "schema_version": 1}', "ok"),
    ]


def cases(topic: str) -> list[tuple[str, bytes | None, bytes | None, str]]:
    if topic == "search":
        user = "fz-s"
        return [*[(k, key, v, o) for k, key, v, o in common(lambda: search(user, "ok-1"), user)],
                ("tombstone", user.encode(), None, "empty"),
                ("huge ts", user.encode(), dumps(search(user, "r1", ts=2**64 - 1)), "invalid"),
                ("ts far in the future", user.encode(),
                 dumps(search(user, "r2", ts=wall_ms() + 10 * 86_400_000)), "invalid"),
                ("wrong types", user.encode(), dumps(search(user, "r3", candidates="a,b")),
                 "invalid"),
                ("id with spaces", b"a user", dumps(search("a user", "r4")), "invalid"),
                ("1001 candidates", user.encode(), dumps(search(
                    user, "r5", candidates=[{"item_id": str(i)} for i in range(1001)])),
                 "invalid")]
    if topic == "action":
        user = "fz-a"
        return [*[(k, key, v, o) for k, key, v, o in common(lambda: action(user, 1), user)],
                ("tombstone", user.encode(), None, "empty"),
                ("huge number", user.encode(), dumps(action(user, 2, position=10**15)), "invalid"),
                ("ts before 1970", user.encode(), dumps(action(user, 3, ts=-5)), "invalid"),
                ("wrong types", user.encode(), dumps(action(user, 4, ts="now")), "invalid"),
                ("unknown action", user.encode(), dumps(action(user, 5, action="teleport")),
                 "invalid")]
    sku = "fz-sku"
    return [*[(k, key, v, "refused by the broker" if key is None else o)
              for k, key, v, o in common(lambda: item(sku), sku)],
            ("tombstone (a delete)", sku.encode(), None, "ok"),
            # A compacted topic refuses records without a key: they never reach an agent.
            ("tombstone without key", None, None, "refused by the broker"),
            ("empty title", sku.encode(), dumps(item(sku, title="")), "invalid"),
            ("whitespace title", sku.encode(), dumps(item(sku, title=" \t ")), "invalid"),
            ("negative price", sku.encode(), dumps(item(sku, price=-3.0)), "invalid"),
            ("huge price", sku.encode(), dumps(item(sku, price=1e300)), "invalid")]


async def test_bad_records_end_answered_applied_or_deadlettered(
    tmp_path: Path, models_dir: Path
) -> None:
    broker = own_broker(tmp_path)
    broker.start(timeout=120)
    # A small deadletter topic: the oversized records are kept as a prefix + size + sha256.
    dep = FaultDeployment(broker, tmp_path, models_dir, tag="fuzz")
    worker = dep.start_worker(STREAMRANK_DEADLETTER_MAX_BYTES=str(256 * 1024))
    try:
        await worker.wait_ready(180)
        rss_before = rss_mb(worker.proc.pid)
        expected: Counter[str] = Counter()
        sent: dict[tuple[str, int], tuple[str, str]] = {}  # (topic, offset) -> (kind, outcome)
        producer = dep.clients.producer(acks="all", max_request_size=2 * 1024 * 1024)
        await producer.start()
        try:
            for role in ("search", "action", "catalog"):
                topic = getattr(dep.topics, role)
                batch = cases(role)
                assert len({kind for kind, *_ in batch}) >= 15
                for kind, key, value, outcome in batch:
                    if outcome == "refused by the broker":
                        with pytest.raises((KafkaError, AssertionError)):
                            await producer.send_and_wait(topic, value, key=key, partition=0)
                        continue
                    meta = await producer.send_and_wait(topic, value, key=key, partition=0)
                    sent[(topic, meta.offset)] = (f"{role}: {kind}", outcome)
                    if outcome != "ok":
                        expected[outcome] += 1
            # Good traffic after the garbage: still answered.
            good = SearchEvent(event_id="g", request_id="after-fuzz", user_id="fz-good",
                               ts=wall_ms(), query="q", candidates=[Candidate(item_id="a")])
            await producer.send_and_wait(dep.topics.search, encode(good), key=b"fz-good")
            await producer.send_and_wait(dep.topics.action, encode(ActionEvent(
                event_id="ga", user_id="fz-good", ts=wall_ms(), item_id="a", action="click")),
                key=b"fz-good")
            await producer.send_and_wait(dep.topics.catalog, encode(Item(item_id="g-sku",
                                                                        title="Good")),
                                         key=b"g-sku")
        finally:
            await producer.stop()

        began = time.monotonic()
        while True:
            dead = await read_topic(dep.clients, dep.topics.deadletter, idle_s=2.0)
            if len(dead) >= sum(expected.values()) or time.monotonic() - began > 90:
                break
        results = await read_topic(dep.clients, dep.topics.recommendations, idle_s=1.0)
        answered = {orjson.loads(r.value)["request_id"] for r in results}

        outcome_of: dict[str, str] = {}
        for rec in dead:
            h = {k.removeprefix("streamrank.deadletter."): v.decode() for k, v in rec.headers}
            kind, want = sent[(h["source.topic"], int(h["source.offset"]))]
            outcome_of[kind] = h["reason"]
            assert h["reason"] == want, (kind, h)
            assert int(h["original.size"]) >= len(rec.value)
            if kind.endswith("oversize"):
                assert h["truncated"] == "true" and int(h["original.size"]) == OVERSIZE
                assert len(rec.value) < 256 * 1024 and len(h["original.sha256"]) == 64
        missing = [kind for kind, want in sent.values() if want != "ok" and kind not in
                   outcome_of]
        assert all(len(kinds) >= 15 for kinds in _kinds_by_topic(sent).values())
        assert missing == [], missing
        assert len(dead) == sum(expected.values())  # each once
        assert "after-fuzz" in answered and "ok-1" in answered  # duplicate-key search too
        health = worker.get("/health/")
        assert Counter(health["deadletters"]) == expected  # counters match what was sent
        seq = [e["item_id"] for e in worker.get("/users/fz-good/sequence/")["entries"]]
        assert seq == ["a"]
        assert [e["item_id"] for e in worker.get("/users/fz-a/sequence/")["entries"]] == ["i1"]
        await asyncio.sleep(1)
        rss_after = rss_mb(worker.proc.pid)
        print(f"\n[fault] fuzz: {len(sent)} bad records over 3 topics "
              f"({len({k for k, _ in sent.values()})} kinds), {len(dead)} deadlettered "
              f"{dict(expected)}, rss {rss_before:.0f} -> {rss_after:.0f} MB")
        assert rss_after - rss_before < 400  # a few 1 MB records, parsed once each
        assert worker.alive
    finally:
        dep.stop()
        broker.wipe()


def _kinds_by_topic(sent: dict[tuple[str, int], tuple[str, str]]) -> dict[str, set[str]]:
    """Kinds that reached each topic (the broker-refused ones did not)."""
    out: dict[str, set[str]] = {}
    for kind, _ in sent.values():
        role, name = kind.split(": ", 1)
        out.setdefault(role, set()).add(name)
    return out
