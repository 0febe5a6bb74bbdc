"""The tracking feed's batching and commit rules, with a fake consumer (the real one is in
tests/integration/test_delivery_tracking.py and test_route_health_loop.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from pipeline.window_feed import FeedStats, WindowFeed

SENT, DLR = "t.sms.sent", "t.sms.dlr"


def _record(topic: str, partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])


class FakeConsumer:
    def __init__(self, refuse_commits: bool = False) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.refuse_commits = refuse_commits
        self.listener: Any = None

    def subscribe(self, topics: Sequence[str], listener: Any) -> None:
        self.listener = listener

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse_commits:
            raise CommitFailedError("rebalanced")
        self.commits.append(dict(offsets))


class Counter:
    """What the tracking agent does: one send per batch, its future done when 'stored'."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int, int]]] = []
        self.stored: list[asyncio.Future[Any]] = []

    async def __call__(self, records: Sequence[ConsumerRecord[bytes, bytes]],
                       ) -> list[asyncio.Future[Any]]:
        self.batches.append([(r.topic, r.partition, r.offset) for r in records])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.stored.append(future)
        return [future]


def _feed(counter: Counter, now: list[float], batch: int = 1000) -> WindowFeed:
    return WindowFeed("127.0.0.1:1", [SENT, DLR], "app-tracking", counter, batch=batch,
                      within_s=1.0, clock=lambda: now[0], stats=FeedStats())


def test_records_are_collected_for_a_second_then_counted_and_committed_once_stored() -> None:
    async def scenario() -> None:
        now, counter, consumer = [0.0], Counter(), FakeConsumer()
        feed = _feed(counter, now)
        await feed.start_reading(consumer)
        await feed.on_batch(consumer, {TopicPartition(SENT, 0): [_record(SENT, 0, 5)]})
        now[0] = 0.4
        assert feed.fetch_timeout_ms() == 601  # waits only until the batch is due
        await feed.on_batch(consumer, {TopicPartition(DLR, 1): [_record(DLR, 1, 7),
                                                                _record(DLR, 1, 8)]})
        assert counter.batches == [] and consumer.commits == []
        now[0] = 1.0
        flushing = asyncio.ensure_future(
            feed.on_batch(consumer, {TopicPartition(SENT, 0): [_record(SENT, 0, 6)]}))
        await asyncio.sleep(0)
        assert counter.batches == [[(SENT, 0, 5), (DLR, 1, 7), (DLR, 1, 8), (SENT, 0, 6)]]
        assert consumer.commits == []  # not before Kafka stored the deltas
        counter.stored[0].set_result(None)
        await flushing
        assert consumer.commits == [{TopicPartition(SENT, 0): 7, TopicPartition(DLR, 1): 9}]
        assert feed.stats.counted == 4 and feed.fetch_timeout_ms() == 1000

    asyncio.run(scenario())


def test_a_full_batch_is_counted_at_once() -> None:
    async def scenario() -> None:
        now, counter, consumer = [0.0], Counter(), FakeConsumer()
        feed = _feed(counter, now, batch=3)
        flushing = asyncio.ensure_future(feed.on_batch(consumer, {
            TopicPartition(SENT, 0): [_record(SENT, 0, o) for o in range(3)]}))
        await asyncio.sleep(0)
        assert len(counter.batches) == 1
        counter.stored[0].set_result(None)
        await flushing
        assert consumer.commits == [{TopicPartition(SENT, 0): 3}]

    asyncio.run(scenario())


def test_a_refused_send_commits_nothing() -> None:
    async def scenario() -> None:
        now, counter, consumer = [0.0], Counter(), FakeConsumer()
        feed = _feed(counter, now, batch=1)
        flushing = asyncio.ensure_future(
            feed.on_batch(consumer, {TopicPartition(SENT, 0): [_record(SENT, 0, 0)]}))
        await asyncio.sleep(0)
        counter.stored[0].set_exception(RuntimeError("not stored"))
        with pytest.raises(RuntimeError):
            await flushing  # the follower restarts the consumer from the committed offsets
        assert consumer.commits == []

    asyncio.run(scenario())


def test_partitions_revoked_flush_and_commit_what_was_collected_first() -> None:
    async def scenario() -> None:
        now, counter, consumer = [0.0], Counter(), FakeConsumer()
        feed = _feed(counter, now)
        await feed.start_reading(consumer)
        await feed.on_batch(consumer, {TopicPartition(DLR, 2): [_record(DLR, 2, 40)]})
        revoking = asyncio.ensure_future(
            consumer.listener.on_partitions_revoked([TopicPartition(DLR, 2)]))
        await asyncio.sleep(0)
        counter.stored[0].set_result(None)
        await revoking
        assert consumer.commits == [{TopicPartition(DLR, 2): 41}]

    asyncio.run(scenario())


def test_a_commit_refused_after_a_rebalance_is_counted_as_recounted_not_raised() -> None:
    async def scenario() -> None:
        now, counter, consumer = [0.0], Counter(), FakeConsumer(refuse_commits=True)
        feed = _feed(counter, now, batch=2)
        flushing = asyncio.ensure_future(feed.on_batch(consumer, {
            TopicPartition(SENT, 1): [_record(SENT, 1, 0), _record(SENT, 1, 1)]}))
        await asyncio.sleep(0)
        counter.stored[0].set_result(None)
        await flushing
        assert (feed.stats.counted, feed.stats.recounted) == (0, 2)

    asyncio.run(scenario())


def test_a_stopped_consumer_drops_what_it_collected_for_the_next_one_to_read_again() -> None:
    async def scenario() -> None:
        now, counter, consumer = [0.0], Counter(), FakeConsumer()
        feed = _feed(counter, now)
        await feed.on_batch(consumer, {TopicPartition(SENT, 0): [_record(SENT, 0, 9)]})
        feed.on_stopped()
        await feed.flush(consumer)
        assert counter.batches == [] and consumer.commits == []

    asyncio.run(scenario())


def test_the_feed_fetches_with_the_batching_settings_it_is_given() -> None:
    """The worker passes SMSFLOW_FETCH_MIN_BYTES / _MAX_WAIT_MS (sms.sent and sms.dlr are
    busy topics: fewer, fuller fetches instead of aiokafka's one byte)."""
    seen: list[dict[str, Any]] = []

    def factory(**config: Any) -> Any:
        seen.append(config)
        raise ConnectionError("stop here")

    feed = WindowFeed("127.0.0.1:1", [SENT], "g", Counter(), fetch_min_bytes=32768,
                      fetch_max_wait_ms=20, consumer_factory=factory, stats=FeedStats())
    with pytest.raises(ConnectionError):
        asyncio.run(feed.follow_once())
    assert (seen[0]["fetch_min_bytes"], seen[0]["fetch_max_wait_ms"]) == (32768, 20)
