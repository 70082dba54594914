"""The worker's reliability pieces without Kafka: deadletter sends that must land, results
that must be acknowledged, repeated library log lines summarised."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from contracts import DecodeError, RankedResult
from streams.kafka import deadletter as deadletter_mod
from streams.kafka.deadletter import HEADER_PREFIX, OVERHEAD_BYTES, DeadLetters
from streams.worker import output as output_mod
from streams.worker.log_limits import RepeatLimiter, install
from streams.worker.output import ResultPublisher


class FlakyTopic:
    """A Faust topic whose first `failures` sends fail with `error`; delivery futures after."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or RuntimeError("broker away")
        self.sent: list[dict[str, Any]] = []

    async def send(self, **record: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise self.error
        self.sent.append(record)

        async def delivered() -> str:
            return "metadata"
        return delivered()


def event(value: bytes | None, key: bytes | None = b"u1") -> Any:
    return SimpleNamespace(key=key, value=value, message=SimpleNamespace(
        topic="streamrank.events.search", partition=3, offset=42))


def headers(record: dict[str, Any]) -> dict[str, str]:
    return {k.removeprefix(HEADER_PREFIX): v.decode() for k, v in record["headers"]}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadletter_mod, "RETRY_S", (0.0,))
    monkeypatch.setattr(output_mod, "RETRY_S", (0.0,))


async def test_deadletter_is_retried_until_acknowledged_and_counted_once() -> None:
    topic = FlakyTopic(failures=3)
    counted: list[str] = []
    letters = DeadLetters(topic, on_send=counted.append, max_record_bytes=1 << 20)
    await letters.send(event(b"{bad"), DecodeError("not_json", "unexpected"))
    assert len(topic.sent) == 1 and counted == ["not_json"]
    assert letters.counts == {"not_json": 1}
    h = headers(topic.sent[0])
    assert h["reason"] == "not_json" and h["source.offset"] == "42"
    assert h["truncated"] == "false" and topic.sent[0]["value"] == b"{bad"


async def test_oversized_record_is_kept_as_a_prefix_with_size_and_checksum() -> None:
    topic = FlakyTopic()
    letters = DeadLetters(topic, max_record_bytes=OVERHEAD_BYTES + 1000)
    big = b"x" * 1_000_108  # the size a default broker accepts but Faust's producer refused
    await letters.send(event(big), DecodeError("too_large", "1000108 bytes > limit"))
    record = topic.sent[0]
    h = headers(record)
    assert record["value"] == big[:1000] and h["truncated"] == "true"
    assert h["original.size"] == "1000108" and len(h["original.sha256"]) == 64
    assert letters.truncated == 1


async def test_a_lower_cluster_limit_shrinks_the_record_instead_of_failing_forever() -> None:
    topic = FlakyTopic(failures=1, error=RuntimeError("MessageSizeTooLargeError"))
    letters = DeadLetters(topic, max_record_bytes=4 * OVERHEAD_BYTES)
    await letters.send(event(b"y" * 100_000), DecodeError("too_large", "big"))
    assert len(topic.sent[0]["value"]) == OVERHEAD_BYTES  # halved budget minus overhead
    assert letters.max_record_bytes == 2 * OVERHEAD_BYTES


async def test_tombstone_deadletters_with_an_empty_value() -> None:
    topic = FlakyTopic()
    await DeadLetters(topic).send(event(None, key=None), DecodeError("empty", "no value"))
    assert topic.sent[0]["value"] == b"" and topic.sent[0]["key"] is None


async def test_result_is_republished_until_acknowledged() -> None:
    topic = FlakyTopic(failures=2)
    retried: list[int] = []
    publisher = ResultPublisher(topic, on_retry=lambda: retried.append(1))
    result = RankedResult(request_id="r", user_id="u", items=[], model_version="v",
                          received_ts=1, published_ts=2)
    await publisher.publish(result)
    assert len(topic.sent) == 1 and topic.sent[0]["key"] == "u"
    assert publisher.retries == 2 and len(retried) == 2


def test_repeated_library_errors_are_said_once_then_summarised() -> None:
    now = [0.0]
    limiter = RepeatLimiter(every_s=30.0, clock=lambda: now[0])

    def record(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("aiokafka.conn", level, __file__, 1, msg, ("node", 1), None)

    template = "Unable connect to %r: %s"
    passed = [limiter.filter(record(template)) for _ in range(180)]
    assert passed[0] and not any(passed[1:])  # 180 lines in one second -> one
    assert limiter.filter(record("Another problem %r %s"))  # a different message still shows
    assert limiter.filter(record(template, logging.INFO))  # below WARNING: untouched
    now[0] = 31.0
    summary = record(template)
    assert limiter.filter(summary) and "179 more like this" in str(summary.msg)
    assert limiter.take_dropped() == 179 and limiter.take_dropped() == 0


def test_install_reaches_existing_library_loggers_only() -> None:
    limiter = RepeatLimiter()
    child = logging.getLogger("aiokafka.streamrank-test-child")
    own = logging.getLogger("streams.streamrank-test")
    try:
        assert install(limiter) >= 1
        assert limiter in child.filters and limiter not in own.filters
    finally:
        for logger in logging.Logger.manager.loggerDict.values():
            if isinstance(logger, logging.Logger) and limiter in logger.filters:
                logger.removeFilter(limiter)
