from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connectors.sender.offsets import OffsetTracker


def test_nothing_started_means_nothing_to_commit() -> None:
    assert OffsetTracker().committable(0) is None


def test_commit_waits_for_the_oldest_unfinished_record() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started(0, offset)
    tracker.finished(0, 12)
    tracker.finished(0, 11)
    assert tracker.committable(0) == 10
    tracker.finished(0, 10)
    assert tracker.committable(0) == 13
    assert tracker.in_flight() == 0


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    tracker.started(0, 5)
    tracker.started(1, 7)
    tracker.finished(1, 7)
    assert tracker.committable(0) == 5
    assert tracker.committable(1) == 8


def test_forget_drops_a_revoked_partition() -> None:
    tracker = OffsetTracker()
    tracker.started(3, 1)
    tracker.forget(3)
    assert tracker.committable(3) is None
    assert tracker.in_flight() == 0


@given(st.permutations(list(range(30))), st.integers(min_value=0, max_value=30))
def test_committed_offset_never_passes_an_unfinished_record(order: list[int], cut: int) -> None:
    tracker = OffsetTracker()
    for offset in range(30):
        tracker.started(0, offset)
    finished = set(order[:cut])
    for offset in order[:cut]:
        tracker.finished(0, offset)
    committable = tracker.committable(0)
    assert committable is not None
    assert all(o in finished for o in range(committable))
    assert committable == 30 or committable not in finished
