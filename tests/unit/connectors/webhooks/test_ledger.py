"""The webhook connector's ack ledger: commits never pass an unfinished report."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.webhooks.ledger import AckLedger


def test_nothing_tracked_nothing_to_commit() -> None:
    ledger = AckLedger()
    ledger.assign(0)
    assert ledger.committable(0) is None
    assert ledger.committable(7) is None


def test_commit_stops_at_the_oldest_unfinished_record() -> None:
    ledger = AckLedger()
    ledger.assign(0)
    tickets = [ledger.track(0, offset) for offset in range(10, 15)]
    assert ledger.committable(0) == 10
    for ticket in tickets[1:]:  # a slow tenant's report at 10, fast tenants' behind it
        ledger.finish(ticket)
    assert ledger.committable(0) == 10
    assert ledger.pending(0) == 5
    ledger.finish(tickets[0])
    assert ledger.committable(0) == 15
    assert ledger.pending(0) == 0


def test_partitions_are_independent() -> None:
    ledger = AckLedger()
    slow = ledger.track(0, 0)
    fast = ledger.track(1, 0)
    ledger.finish(fast)
    assert (ledger.committable(0), ledger.committable(1)) == (0, 1)
    ledger.finish(slow)
    assert ledger.committable(0) == 1


def test_gaps_in_offsets_are_fine() -> None:
    # Compaction or transaction markers leave gaps; the next offset to read follows the last.
    ledger = AckLedger()
    ledger.finish(ledger.track(0, 3))
    ledger.finish(ledger.track(0, 9))
    assert ledger.committable(0) == 10


def test_a_ticket_from_before_a_revocation_does_not_count() -> None:
    ledger = AckLedger()
    ledger.assign(0)
    old = ledger.track(0, 5)
    ledger.revoke(0)
    assert not ledger.finish(old)
    ledger.assign(0)  # the same partition comes back: a new generation
    assert not ledger.is_current(old)
    new = ledger.track(0, 5)
    assert not ledger.finish(old)
    assert ledger.committable(0) == 5
    assert ledger.finish(new)
    assert ledger.committable(0) == 6


def test_offsets_going_backwards_are_a_bug() -> None:
    ledger = AckLedger()
    ledger.track(0, 5)
    with pytest.raises(ValueError, match="offset 4"):
        ledger.track(0, 4)


@given(st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=60),
       st.randoms(use_true_random=False))
def test_matches_a_brute_force_model(steps: list[int], rng: random.Random) -> None:
    """Finish in random order; the committable offset is always the first unfinished one."""
    ledger = AckLedger()
    offsets, offset = [], 0
    for step in steps:
        offset += step
        offsets.append(offset)
    tickets = {o: ledger.track(0, o) for o in offsets}
    unfinished = set(offsets)
    order = list(offsets)
    rng.shuffle(order)
    for o in order:
        ledger.finish(tickets[o])
        unfinished.discard(o)
        expected = min(unfinished) if unfinished else offsets[-1] + 1
        assert ledger.committable(0) == expected
