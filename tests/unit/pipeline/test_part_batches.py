"""sms.dlr.parts in batches (pipeline/part_batches.py): the record format, the partition of a
message id, and when parts are handed over and their done markers written."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from pipeline.part_batches import BATCH_MAGIC, PartBatcher, pack, partition_of, unpack


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_a_batch_unpacks_to_its_parts(values: list[bytes]) -> None:
    assert list(unpack(pack(values))) == values


def test_a_record_of_one_part_is_its_own_value() -> None:
    value = b"\xc3\x01" + bytes(8) + b"body"
    assert list(unpack(value)) == [value]


@pytest.mark.parametrize("cut", [1, 3, 6])
def test_a_batch_cut_short_is_refused(cut: int) -> None:
    record = pack([b"first", b"second"])
    with pytest.raises(ValueError, match="truncated"):
        list(unpack(record[:-cut]))


def test_the_partition_is_the_default_partitioners() -> None:
    """As aiokafka/faust place a key (and tests/integration/test_partitioning.py shows our
    librdkafka producers place it the same): a message's timer commands, keyed by its id,
    land where its parts do."""
    partitioner = DefaultPartitioner()
    for partitions in (1, 4, 12):
        every = list(range(partitions))
        for n in range(500):
            key = f"m-{n:05d}-{n * 7919}".encode()
            assert partition_of(key, partitions) == partitioner(key, every, every)


class _Outputs:
    """The output producer's surface the batcher uses; each record's future is resolved by
    the test, as the broker's acknowledgement would."""

    def __init__(self, hand_over_delay_s: float = 0.001) -> None:
        self.hand_over_delay_s = hand_over_delay_s
        self.records: list[tuple[bytes | None, bytes | None, int | None]] = []
        self.futures: list[asyncio.Future[None]] = []
        self.flushed = 0

    def _record(self, key: bytes | None, value: bytes | None,
                partition: int | None) -> asyncio.Future[None]:
        self.records.append((key, value, partition))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def send_soon(self, topic: str, key: bytes | None, value: bytes | None,
                  headers: Any = None, *, partition: int | None = None) -> asyncio.Future[None]:
        return self._record(key, value, partition)

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: Any = None) -> asyncio.Future[None]:
        return self._record(key, value, None)

    async def flush(self) -> None:
        self.flushed += 1


class _Event:
    """What after_delivery needs of an event: a partition, and a weak reference to it."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def _event(partition: int) -> Any:
    return _Event(partition)


def _ids_on(partition: int, partitions: int, count: int) -> list[str]:
    ids = (f"m-{n}" for n in range(10_000))
    return [i for i in ids if partition_of(i.encode(), partitions) == partition][:count]


@pytest.mark.asyncio
async def test_parts_go_out_one_record_per_partition_and_markers_wait_for_it() -> None:
    outputs = _Outputs()
    batcher = PartBatcher(outputs, "parts", lambda: 4, delay_s=0.01)  # type: ignore[arg-type]
    stored: list[str] = []
    on_0, on_1 = _ids_on(0, 4, 2), _ids_on(1, 4, 1)
    for message_id in [*on_0, *on_1]:
        await batcher.add(message_id, message_id.encode(), _event(7),
                          lambda m=message_id: stored.append(m))  # type: ignore[misc]
    await batcher.add("no-marker", b"x", _event(7), None)  # a failed part: no done marker
    assert outputs.records == []  # held for the delay
    await asyncio.sleep(0.05)
    by_partition = {partition: list(unpack(value or b""))
                    for _key, value, partition in outputs.records}
    assert by_partition[0] == [m.encode() for m in on_0]
    assert by_partition[1] == [m.encode() for m in on_1]
    assert all(key is None and (value or b"").startswith(BATCH_MAGIC)
               for key, value, _p in outputs.records)
    assert (batcher.parts, batcher.records) == (4, len(outputs.records))
    assert stored == []  # not stored yet: no marker
    for future in outputs.futures:
        future.set_result(None)
    await asyncio.sleep(0)
    assert sorted(stored) == sorted([*on_0, *on_1])


@pytest.mark.asyncio
async def test_the_commit_barrier_hands_over_what_is_held_at_once() -> None:
    outputs = _Outputs()
    batcher = PartBatcher(outputs, "parts", lambda: 4, delay_s=60.0)  # type: ignore[arg-type]
    await batcher.add("m-1", b"part", _event(0), None)
    await batcher.flush()
    assert len(outputs.records) == 1 and outputs.flushed == 1


@pytest.mark.asyncio
async def test_a_full_batch_is_handed_over_without_waiting() -> None:
    outputs = _Outputs()
    batcher = PartBatcher(outputs, "parts", lambda: 1, delay_s=60.0,  # type: ignore[arg-type]
                          max_parts=3)
    for n in range(3):
        await batcher.add(f"m-{n}", b"part", _event(0), None)
    assert len(outputs.records) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(("partitions", "delay_s"), [(0, 0.001), (4, 0.0)])
async def test_a_part_goes_alone_keyed_by_its_message_when_it_cannot_be_batched(
    partitions: int, delay_s: float
) -> None:
    """The partition count is not known yet (0), or batching is off: as before, one record
    keyed by the message id, partitioned by the producer."""
    outputs = _Outputs()
    batcher = PartBatcher(outputs, "parts", lambda: partitions,  # type: ignore[arg-type]
                          delay_s=delay_s)
    stored: list[bool] = []
    await batcher.add("m-1", b"part", _event(0), lambda: stored.append(True))
    assert outputs.records == [(b"m-1", b"part", None)]
    outputs.futures[0].set_result(None)
    await asyncio.sleep(0)
    assert stored == [True]


@pytest.mark.asyncio
async def test_in_a_backlog_parts_are_held_as_long_as_the_output_producer_holds_records(
) -> None:
    outputs = _Outputs(hand_over_delay_s=0.05)  # pipeline/backlog_batching.py's longer hold
    batcher = PartBatcher(outputs, "parts", lambda: 4, delay_s=0.001)  # type: ignore[arg-type]
    await batcher.add("m-1", b"part", _event(0), None)
    await asyncio.sleep(0.01)
    assert outputs.records == []
    await asyncio.sleep(0.08)
    assert len(outputs.records) == 1
