"""Which partitions the sender pauses (connectors/sender/back_pressure.py, pure)."""

from __future__ import annotations

import pytest
from confluent_kafka import TopicPartition

from connectors.sender.back_pressure import PartitionGate, PartitionPauser

ASSIGNED = (0, 1, 2, 3)


def _gate() -> PartitionGate:
    return PartitionGate(per_smsc_limit=100, total_limit=1_000)


def test_nothing_pauses_below_the_bounds() -> None:
    gate = _gate()
    assert gate.paused({"a": {0: 100}, "b": {1: 50, 2: 50}}, ASSIGNED) == frozenset()


def test_an_smsc_over_its_bound_pauses_only_the_partitions_its_parts_came_from() -> None:
    gate = _gate()
    queued = {"stuck": {0: 61, 2: 40}, "fast": {1: 5, 3: 5}}
    assert gate.paused(queued, ASSIGNED) == {0, 2}
    assert gate.over == {"stuck": {0, 2}}


def test_the_smsc_stays_over_until_half_its_bound_and_its_partitions_are_sticky() -> None:
    gate = _gate()
    assert gate.paused({"stuck": {0: 101}}, ASSIGNED) == {0}
    # A record of the stuck SMSC read from partition 3 meanwhile: 3 joins the paused set.
    assert gate.paused({"stuck": {0: 60, 3: 1}}, ASSIGNED) == {0, 3}
    # Partition 0's parts went out, only 3's remain: 0 stays paused (it would bring more).
    assert gate.paused({"stuck": {0: 0, 3: 51}}, ASSIGNED) == {0, 3}
    assert gate.paused({"stuck": {3: 50}}, ASSIGNED) == frozenset()
    assert gate.over == {}


def test_two_smscs_over_pause_the_union() -> None:
    gate = _gate()
    assert gate.paused({"a": {0: 101}, "b": {2: 150}, "c": {1: 3}}, ASSIGNED) == {0, 2}
    assert gate.paused({"a": {0: 10}, "b": {2: 150}, "c": {1: 3}}, ASSIGNED) == {2}


def test_the_total_bound_pauses_everything_until_half() -> None:
    gate = _gate()
    queued = {f"s{i}": {i % 4: 99} for i in range(11)}  # 1,089 parts, no SMSC over
    assert gate.paused(queued, ASSIGNED) == set(ASSIGNED)
    assert gate.paused({"s0": {0: 99}, "s1": {1: 99}} | {f"s{i}": {2: 80} for i in range(2, 6)},
                       ASSIGNED) == set(ASSIGNED)  # 518 > 500: still over
    assert gate.paused({"s0": {0: 99}, "s1": {1: 99}}, ASSIGNED) == frozenset()


def test_hold_all_pauses_everything_while_it_lasts() -> None:
    gate = _gate()
    assert gate.paused({}, ASSIGNED, hold_all=True) == set(ASSIGNED)
    assert gate.paused({}, ASSIGNED) == frozenset()


def test_only_assigned_partitions_are_named() -> None:
    gate = _gate()
    assert gate.paused({"stuck": {0: 60, 7: 60}}, ASSIGNED) == {0}
    assert gate.paused({}, (5, 6), hold_all=True) == {5, 6}


def test_an_smsc_whose_queue_is_gone_is_no_longer_over() -> None:
    gate = _gate()
    assert gate.paused({"removed": {1: 200}}, ASSIGNED) == {1}
    assert gate.paused({}, ASSIGNED) == frozenset()
    assert gate.over == {}


def test_a_round_takes_no_more_than_the_fullest_smsc_or_the_total_has_left() -> None:
    gate = _gate()
    assert gate.room({}) == 100
    assert gate.room({"a": 30, "b": 60}) == 40
    assert gate.paused({"stuck": {0: 150}, "b": {1: 60}}, ASSIGNED) == {0}
    # The stuck SMSC's partitions are paused: the others may still fill up to their bound.
    assert gate.room({"stuck": 150, "b": 60}) == 40
    big = PartitionGate(per_smsc_limit=1_000, total_limit=1_000)
    assert big.room({"a": 300, "b": 500}) == 200


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PartitionGate(per_smsc_limit=0, total_limit=10)
    with pytest.raises(ValueError):
        PartitionGate(per_smsc_limit=10, total_limit=0)


def test_quiet_means_nothing_could_pause() -> None:
    gate = _gate()
    assert gate.quiet({"a": 100, "b": 50})
    assert not gate.quiet({"a": 101})
    assert not gate.quiet({f"s{i}": 100 for i in range(10)})  # 1,000: the total bound
    assert not gate.quiet({}, hold_all=True)
    gate.paused({"a": {0: 101}}, ASSIGNED)
    assert not gate.quiet({"a": 60})  # still over until half


class _Consumer:
    """What PartitionPauser calls on a confluent-kafka consumer, recorded."""

    def __init__(self) -> None:
        self.paused: set[int] = set()
        self.resumed: list[int] = []

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.partition for tp in partitions}
        self.resumed += [tp.partition for tp in partitions]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]

    def seek(self, partition: TopicPartition) -> None:
        raise AssertionError("no position: nothing to seek")


def test_a_new_assignment_resumes_partitions_the_library_kept_paused() -> None:
    consumer = _Consumer()
    pauser = PartitionPauser(consumer, "t", _gate())  # type: ignore[arg-type]
    pauser.assign([0, 1])
    queued = {"stuck": {0: 101}}
    pauser.apply({"stuck": 101}, lambda: queued, hold_all=False)
    consumer.paused.add(0)  # what librdkafka holds after pausing 0
    assert pauser.paused == {0}
    # A rebalance gives both partitions back; librdkafka keeps 0 paused, the SMSC drained.
    pauser.revoke([0, 1])
    pauser.assign([0, 1])
    queued = {"stuck": {0: 40}}
    pauser.apply({"stuck": 40}, lambda: queued, hold_all=False)
    assert consumer.paused == set() and pauser.paused == frozenset()
