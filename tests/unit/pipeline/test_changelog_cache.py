"""The changelog cache (pipeline/changelog_cache.py): the last value per key is written, a key
set and deleted within the hold costs nothing, and the commit barrier writes everything held
before it waits for the producer."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaException

from pipeline.changelog_cache import ChangelogCache
from pipeline.outputs import OutputProducer

Record = tuple[str, bytes | None, bytes | None, int | None]


class RecordingProducer:
    """The output producer as the cache uses it."""

    def __init__(self, room: int = 1_000) -> None:
        self.records: list[Record] = []
        self.events: list[str] = []
        self.room = room

    def send_soon(self, topic: str, key: bytes | None, value: bytes | None,
                  headers: object = None, *, partition: int | None = None) -> None:
        if len(self.records) >= self.room:
            raise BufferError("full")
        self.records.append((topic, key, value, partition))
        self.events.append("send")

    async def flush(self) -> None:
        self.events.append("flush")


def _cache(producer: RecordingProducer, hold_s: float = 60.0, max_keys: int = 1_000,
           ) -> ChangelogCache:
    return ChangelogCache(producer, hold_s=hold_s, max_keys=max_keys)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_changes_of_one_key_become_one_record_with_the_last_value() -> None:
    producer = RecordingProducer()
    cache = _cache(producer)
    for count in (b"1", b"2", b"3"):
        cache.write("quota-changelog", 0, b"tenant-a", count, absent_before=count == b"1")
    cache.write("quota-changelog", 1, b"tenant-b", b"9", absent_before=True)
    assert producer.records == []  # held until the commit
    await cache.flush()
    assert producer.records == [("quota-changelog", b"tenant-a", b"3", 0),
                                ("quota-changelog", b"tenant-b", b"9", 1)]
    assert producer.events[-1] == "flush"  # handed over first, then waited for
    assert (cache.changes, cache.records, cache.skipped) == (4, 2, 0)


@pytest.mark.parametrize(("absent_before", "expected"), [
    # the changelog has no live value for the key: set and deleted within the hold, no record
    (True, []),
    # it has one: the delete must reach the changelog as a tombstone
    (False, [("pending-changelog", b"smsc-id-1", None, 0)]),
])
@pytest.mark.asyncio
async def test_a_key_set_then_deleted_within_the_hold(
    absent_before: bool, expected: list[Record],
) -> None:
    producer = RecordingProducer()
    cache = _cache(producer)
    cache.write("pending-changelog", 0, b"smsc-id-1", b"part", absent_before=absent_before)
    cache.write("pending-changelog", 0, b"smsc-id-1", None, absent_before=False)
    await cache.flush()
    assert producer.records == expected
    assert cache.skipped == (1 if absent_before else 0)


@pytest.mark.asyncio
async def test_the_same_key_in_two_partitions_or_tables_is_two_records() -> None:
    producer = RecordingProducer()
    cache = _cache(producer)
    cache.write("a-changelog", 0, b"k", b"1", absent_before=True)
    cache.write("a-changelog", 1, b"k", b"2", absent_before=True)
    cache.write("b-changelog", 0, b"k", b"3", absent_before=True)
    await cache.flush()
    assert len(producer.records) == 3


@pytest.mark.asyncio
async def test_held_changes_are_written_after_the_hold_without_a_commit() -> None:
    producer = RecordingProducer()
    cache = _cache(producer, hold_s=0.02)
    cache.write("t", 0, b"k", b"v", absent_before=True)
    await asyncio.sleep(0.1)
    assert producer.records == [("t", b"k", b"v", 0)]
    assert cache.held == 0


@pytest.mark.asyncio
async def test_too_many_keys_are_written_at_once() -> None:
    producer = RecordingProducer()
    cache = _cache(producer, max_keys=3)
    for n in range(3):
        cache.write("t", 0, b"%d" % n, b"v", absent_before=True)
    assert len(producer.records) == 3
    assert cache.held == 0


@pytest.mark.asyncio
async def test_a_full_producer_queue_keeps_the_rest_held_and_the_barrier_waits_for_room() -> None:
    producer = RecordingProducer(room=2)
    cache = _cache(producer)
    for n in range(4):
        cache.write("t", 0, b"%d" % n, b"v", absent_before=True)
    barrier = asyncio.create_task(cache.flush())
    await asyncio.sleep(0.02)
    assert not barrier.done() and cache.held == 2  # the producer has no room yet
    producer.room = 10
    await asyncio.wait_for(barrier, timeout=1)
    assert [key for _, key, _, _ in producer.records] == [b"0", b"1", b"2", b"3"]


@pytest.mark.asyncio
async def test_no_hold_writes_every_change_at_once() -> None:
    producer = RecordingProducer()
    cache = _cache(producer, hold_s=0)
    cache.write("t", 0, b"k", b"1", absent_before=True)
    cache.write("t", 0, b"k", None, absent_before=False)
    assert producer.records == [("t", b"k", b"1", 0), ("t", b"k", None, 0)]


@pytest.mark.asyncio
async def test_a_refused_record_fails_the_barrier() -> None:
    """Through the real output producer: the cache's flush is its commit barrier."""
    outputs = OutputProducer("127.0.0.1:1", **{"message.timeout.ms": 200})
    cache = ChangelogCache(outputs, hold_s=60.0)
    cache.write("nowhere", 0, b"k", b"v", absent_before=True)
    with pytest.raises(KafkaException):
        await asyncio.wait_for(cache.flush(), timeout=10)
    outputs.close(timeout_s=1)
