"""Timer commands in batches (pipeline/key_timers.py): the record format, and which partition a
tick's due keys are commanded in."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.key_timers import (
    KEYS_PER_COMMAND,
    KeyTimers,
    command_keys,
    pack_keys,
)
from smsflow.murmur2 import partition_of

NOW_S = 1_700_000_000.0


@given(st.lists(st.text(max_size=80), min_size=1, max_size=30))
def test_a_batch_command_names_its_keys(keys: list[str]) -> None:
    assert command_keys(None, pack_keys([k.encode() for k in keys])) == keys


def test_a_single_key_command_names_its_record_key() -> None:
    """The older format, still in the topic after an upgrade: key = table key, value empty."""
    assert command_keys(b"smsc-uk:4f2a", b"") == ["smsc-uk:4f2a"]
    assert command_keys(b"smsc-uk:4f2a", None) == ["smsc-uk:4f2a"]


@pytest.mark.parametrize("cut", [1, 3, 5])
def test_a_batch_cut_short_is_refused(cut: int) -> None:
    record = pack_keys([b"smsc-uk:1", b"smsc-uk:2"])
    with pytest.raises(ValueError, match="truncated"):
        command_keys(None, record[:-cut])


class _CommandTopic:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None, int | None]] = []

    async def send(self, *, key: bytes | None = None, value: bytes | None = None,
                   headers: Any = None, partition: int | None = None) -> None:
        self.records.append((key, value, partition))


def _timers(topic: _CommandTopic, partitions: int, clock: list[float]) -> KeyTimers:
    app = SimpleNamespace(
        on_partitions_assigned=SimpleNamespace(connect=lambda handler: None),
        flow_control=SimpleNamespace(is_active=lambda: True),
        in_recovery=False,
    )
    timers = KeyTimers(
        app,  # type: ignore[arg-type]
        name="test", table={}, command_topic=topic,  # type: ignore[arg-type]
        due_of=lambda value: None, partitions=lambda: partitions, clock=lambda: clock[0],
    )
    timers.rebuild()  # as after an assignment: the (empty) table indexed
    return timers


def test_due_keys_go_one_record_per_partition_where_their_entries_are() -> None:
    topic, clock = _CommandTopic(), [NOW_S]
    timers = _timers(topic, partitions=4, clock=clock)
    keys = [f"smsc-uk:{n:x}" for n in range(200)]
    for key in keys:
        timers.schedule(key, int(NOW_S * 1000) + 500)
    timers.schedule("smsc-uk:later", int(NOW_S * 1000) + 60_000)
    clock[0] = NOW_S + 2
    assert asyncio.run(timers.tick()) == 200
    assert len(topic.records) == 4 and timers.command_records == 4
    commanded: list[str] = []
    for record_key, value, partition in topic.records:
        assert record_key is None and partition is not None
        named = command_keys(record_key, value)
        assert {partition_of(k.encode(), 4) for k in named} == {partition}
        commanded += named
    assert sorted(commanded) == sorted(keys)  # each once; the later key is not due
    assert timers.commands_sent == 200 and len(timers) == 1


def test_a_partition_with_many_due_keys_takes_several_records() -> None:
    topic, clock = _CommandTopic(), [NOW_S]
    timers = _timers(topic, partitions=1, clock=clock)
    count = KEYS_PER_COMMAND * 2 + 7
    for n in range(count):
        timers.schedule(f"m-{n}", int(NOW_S * 1000))
    clock[0] = NOW_S + 2
    asyncio.run(timers.tick())
    assert [len(command_keys(k, v)) for k, v, _ in topic.records] == [
        KEYS_PER_COMMAND, KEYS_PER_COMMAND, 7]


def test_until_the_partition_count_is_known_each_key_goes_alone_keyed() -> None:
    topic, clock = _CommandTopic(), [NOW_S]
    timers = _timers(topic, partitions=0, clock=clock)
    timers.schedule("smsc-uk:1", int(NOW_S * 1000))
    timers.schedule("smsc-uk:2", int(NOW_S * 1000))
    clock[0] = NOW_S + 2
    asyncio.run(timers.tick())
    assert sorted(topic.records) == [(b"smsc-uk:1", b"", None), (b"smsc-uk:2", b"", None)]
