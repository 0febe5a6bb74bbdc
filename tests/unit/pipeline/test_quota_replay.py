"""Charging a tenant's daily quota once per source record (replays after a crash)."""

from __future__ import annotations

from pipeline.quota_table import decode_row, encode_row
from smsflow.domain.limits.quota import (
    CHARGED,
    EXCEEDED,
    REPLAYED,
    QuotaUsage,
    TenantQuota,
    charge_record,
)

DAY = 86_400.0


def test_records_are_charged_in_order_until_the_quota_is_used() -> None:
    state = None
    outcomes = []
    for offset in range(4):
        state, outcome = charge_record(state, quota=5, parts=2, now=10.0, partition=1,
                                       offset=offset)
        outcomes.append(outcome)
    assert outcomes == [CHARGED, CHARGED, EXCEEDED, EXCEEDED]
    assert state == TenantQuota(QuotaUsage(0, 4), partition=1, offset=1)


def test_a_replayed_record_is_admitted_without_a_second_charge() -> None:
    state, _ = charge_record(None, quota=5, parts=2, now=10.0, partition=0, offset=3)
    state, _ = charge_record(state, quota=5, parts=2, now=11.0, partition=0, offset=4)
    for offset in (3, 4):  # re-delivered after a crash: already charged
        again, outcome = charge_record(state, quota=5, parts=2, now=12.0, partition=0,
                                       offset=offset)
        assert outcome == REPLAYED
        assert again == state


def test_a_record_rejected_before_the_crash_is_rejected_again() -> None:
    state, _ = charge_record(None, quota=3, parts=3, now=10.0, partition=0, offset=0)
    state, first = charge_record(state, quota=3, parts=1, now=10.0, partition=0, offset=1)
    _, replay = charge_record(state, quota=3, parts=1, now=11.0, partition=0, offset=1)
    assert (first, replay) == (EXCEEDED, EXCEEDED)


def test_another_partition_is_not_a_replay() -> None:
    # The topic was repartitioned: offsets of different partitions are not comparable.
    state, _ = charge_record(None, quota=10, parts=1, now=10.0, partition=0, offset=50)
    state, outcome = charge_record(state, quota=10, parts=1, now=10.0, partition=1, offset=2)
    assert outcome == CHARGED
    assert state.usage.used == 2


def test_usage_resets_on_a_new_utc_day() -> None:
    state, _ = charge_record(None, quota=2, parts=2, now=10.0, partition=0, offset=0)
    state, outcome = charge_record(state, quota=2, parts=2, now=DAY + 1.0, partition=0, offset=1)
    assert outcome == CHARGED
    assert state.usage == QuotaUsage(1, 2)


def test_a_rejection_on_the_first_record_leaves_nothing_charged() -> None:
    state, outcome = charge_record(None, quota=2, parts=3, now=10.0, partition=0, offset=0)
    assert outcome == EXCEEDED
    assert state.usage.used == 0
    assert state.offset == -1


def test_the_table_row_round_trips_and_a_bad_row_counts_from_zero() -> None:
    state = TenantQuota(QuotaUsage(20_000, 123), partition=3, offset=4567)
    assert decode_row(encode_row(state)) == state
    assert decode_row(None) is None
    assert decode_row(b"not json") is None
    assert decode_row(b"[1, 2]") is None
