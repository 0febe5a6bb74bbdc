"""Bind reports → is the SMSC bound (smsflow/domain/tracking/binds.py)."""

from __future__ import annotations

from smsflow.domain.tracking.binds import (
    BindReport,
    Board,
    after_grace,
    apply_report,
    holder_partitions,
    smsc_bound,
)

NOW = 1_800_000_000_000


def _report(bound: int, age_s: float = 0) -> BindReport:
    return BindReport(bound=bound, heartbeat_s=5, updated_at_ms=NOW - int(age_s * 1000))


def test_nothing_known_is_none() -> None:
    assert smsc_bound({}, "smsc-us", NOW) is None


def test_one_sender_with_a_bind_up_is_enough() -> None:
    board: Board = {}
    apply_report(board, "smsc-us", "a", _report(0))
    apply_report(board, "smsc-us", "b", _report(1))
    assert smsc_bound(board, "smsc-us", NOW) is True
    apply_report(board, "smsc-us", "b", _report(0))
    assert smsc_bound(board, "smsc-us", NOW) is False
    assert smsc_bound(board, "smsc-uk", NOW) is None, "per SMSC"


def test_stale_reports_are_ignored() -> None:
    board: Board = {}
    apply_report(board, "smsc-us", "crashed", _report(2, age_s=16))  # 3 heartbeats = 15 s
    assert smsc_bound(board, "smsc-us", NOW) is None
    apply_report(board, "smsc-us", "alive", _report(0, age_s=14))
    assert smsc_bound(board, "smsc-us", NOW) is False, "the crashed sender's binds do not count"


def test_a_tombstone_forgets_the_sender() -> None:
    board: Board = {}
    apply_report(board, "smsc-us", "a", _report(0))
    apply_report(board, "smsc-us", "a", None)
    assert board == {} and smsc_bound(board, "smsc-us", NOW) is None
    apply_report(board, "smsc-us", "never-seen", None)
    assert board == {}


def test_holder_partitions_are_those_of_other_fresh_holders() -> None:
    board: Board = {}
    apply_report(board, "smsc-us", "me", BindReport(1, 5, NOW, partitions=(0,)))
    apply_report(board, "smsc-us", "holder", BindReport(1, 5, NOW, partitions=(3, 1)))
    apply_report(board, "smsc-us", "slotless", BindReport(0, 5, NOW, partitions=(2,)))
    apply_report(board, "smsc-us", "crashed", BindReport(1, 5, NOW - 16_000, partitions=(4,)))
    assert holder_partitions(board, "smsc-us", NOW, besides="me") == [1, 3]
    assert holder_partitions(board, "smsc-us", NOW, besides="holder") == [0]
    assert holder_partitions(board, "smsc-uk", NOW, besides="me") == []


def test_a_drop_shorter_than_the_grace_keeps_the_smsc_bound() -> None:
    grace = 10_000
    answer, since = after_grace(True, None, NOW, grace)
    assert (answer, since) == (True, None)
    answer, since = after_grace(False, since, NOW + 1_000, grace)  # the bind dropped
    assert (answer, since) == (True, NOW + 1_000), "within the grace: still bound"
    answer, since = after_grace(False, since, NOW + 10_999, grace)
    assert answer is True
    answer, since = after_grace(True, since, NOW + 11_500, grace)  # re-bound in time
    assert (answer, since) == (True, None)
    answer, since = after_grace(False, since, NOW + 12_000, grace)  # a new drop starts afresh
    assert (answer, since) == (True, NOW + 12_000)


def test_a_drop_longer_than_the_grace_is_unbound_until_a_bind_is_back() -> None:
    grace = 10_000
    answer, since = after_grace(False, None, NOW, grace)
    assert answer is True
    answer, since = after_grace(False, since, NOW + grace, grace)
    assert (answer, since) == (False, NOW)
    assert after_grace(None, since, NOW + grace + 1, grace) == (None, None), "no reports"
    assert after_grace(False, None, NOW, 0) == (False, NOW), "no grace: at once"
