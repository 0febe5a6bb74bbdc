"""Charging a tenant's daily quota once per source record (replays after a crash)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from pipeline.quota_table import QuotaBook, decode_row, encode_row
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


def test_the_row_is_the_json_it_always_was() -> None:
    """Rows written before are read by the same decoder: the bytes must not change."""
    for state in (TenantQuota(QuotaUsage(20_000, 123), partition=3, offset=4567),
                  TenantQuota(QuotaUsage(0, 0), partition=0, offset=-1),
                  TenantQuota(QuotaUsage(20_429, 10**12), partition=11, offset=2**62)):
        assert encode_row(state) == json.dumps(
            [state.usage.day, state.usage.used, state.partition, state.offset]
        ).encode()


class _Table(dict[str, bytes]):
    """The faust table's surface QuotaBook uses (get, item assignment)."""


def _book(table: _Table) -> QuotaBook:
    """A book on ``table``, through the app's ``Table`` factory as the worker builds it."""
    app = SimpleNamespace(Table=lambda *_args, **_kwargs: table)
    return QuotaBook(app)  # type: ignore[arg-type]


def test_a_row_replaced_in_the_table_is_read_again() -> None:
    """The book keeps the row it wrote decoded; a row the table got otherwise (restored from
    the changelog after a rebalance) is decoded, not taken from that memory."""
    table = _Table()
    book = _book(table)
    for offset in range(3):
        assert book.charge("acme", 10, 2, 10.0, 0, offset) is None
    assert decode_row(table["acme"]) == TenantQuota(QuotaUsage(0, 6), 0, 2)
    table["acme"] = encode_row(TenantQuota(QuotaUsage(0, 9), 0, 7))  # restored: another row
    refusal = book.charge("acme", 10, 2, 10.0, 0, 8)
    assert refusal is not None and "used 9 of its daily quota of 10" in refusal.detail
