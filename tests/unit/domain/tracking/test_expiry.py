from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsflow.domain.receipts import DeliveryStatus, IdFormat
from smsflow.domain.tracking import (
    DEFAULT_CORRELATION_POLICY,
    REASON_RECEIPT_UNMATCHED,
    SELF_EXPIRED_REASON,
    Arrival,
    CorrelationPolicy,
    EntryKind,
    PendingEntry,
    StateFormatError,
    TimerAction,
    TimerWheel,
    alternate_keys,
    correlation_key,
    done_marker,
    expiry_due_ms,
    marker_status,
    on_arrival,
    on_timer,
    pending_receipt,
    pending_sent,
)

T0 = 1_700_000_000_000
SEC = 1_000
MIN = 60 * SEC
HOUR = 60 * MIN
P = DEFAULT_CORRELATION_POLICY


# --- self-EXPIRED ----------------------------------------------------------------------------


def test_expiry_is_due_a_grace_period_after_the_validity_end() -> None:
    assert expiry_due_ms(T0, T0 + 24 * HOUR) == T0 + 24 * HOUR + P.expiry_grace_ms


def test_expiry_clamps_bad_validity() -> None:
    # expires_at before sent_at (clock skew between the API and the sender): from sent_at.
    assert expiry_due_ms(T0, T0 - HOUR) == T0 + P.expiry_grace_ms
    # An absurd validity is capped.
    assert expiry_due_ms(T0, T0 + 365 * 24 * HOUR) == T0 + P.max_validity_ms + P.expiry_grace_ms


def test_waiting_submit_expires_exactly_when_due() -> None:
    entry = pending_sent(b"avro", sent_at_ms=T0, expires_at_ms=T0 + HOUR)
    assert entry.kind is EntryKind.SENT and entry.at_ms == T0 + HOUR
    due = T0 + HOUR + P.expiry_grace_ms
    assert entry.due_ms == due
    before = on_timer(entry, due - 1)
    assert before.action is TimerAction.WAIT and before.entry == entry
    at = on_timer(entry, due)
    assert at.action is TimerAction.EXPIRE and at.reason == SELF_EXPIRED_REASON
    assert at.entry is not None and at.entry.kind is EntryKind.DONE
    assert marker_status(at.entry) == (DeliveryStatus.EXPIRED, True)
    assert at.entry.due_ms == due + P.done_ttl_ms


# --- unmatched receipts ----------------------------------------------------------------------


def test_unmatched_receipt_is_retried_then_dead_lettered() -> None:
    entry = pending_receipt(b"receipt", now_ms=T0)
    assert entry.kind is EntryKind.RECEIPT and entry.due_ms == T0 + 1 * MIN
    checkpoints = []
    now = entry.due_ms
    while True:
        decision = on_timer(entry, now)
        if decision.action is TimerAction.DEAD_LETTER:
            break
        assert decision.action is TimerAction.RETRY and decision.entry is not None
        checkpoints.append(now - T0)
        entry = decision.entry
        now = entry.due_ms
    assert checkpoints == [1 * MIN, 5 * MIN, 15 * MIN]
    assert now == T0 + P.receipt_ttl_ms
    assert decision.entry is None and decision.reason == REASON_RECEIPT_UNMATCHED
    assert entry.attempts == 3 and entry.payload == b"receipt"


def test_receipt_ttl_wins_even_if_the_timer_was_late() -> None:
    entry = pending_receipt(b"r", now_ms=T0)
    decision = on_timer(entry, T0 + 5 * HOUR)  # worker was down for hours
    assert decision.action is TimerAction.DEAD_LETTER


def test_retry_schedule_never_passes_the_ttl() -> None:
    policy = CorrelationPolicy(receipt_retry_ms=(30 * SEC, 10 * MIN), receipt_ttl_ms=5 * MIN)
    entry = pending_receipt(b"r", now_ms=T0, policy=policy)
    retried = on_timer(entry, entry.due_ms, policy)
    assert retried.entry is not None and retried.entry.due_ms == T0 + 5 * MIN
    assert on_timer(retried.entry, T0 + 5 * MIN, policy).action is TimerAction.DEAD_LETTER


def test_no_retries_configured_means_one_check_at_the_ttl() -> None:
    policy = CorrelationPolicy(receipt_retry_ms=())
    entry = pending_receipt(b"r", now_ms=T0, policy=policy)
    assert entry.due_ms == T0 + policy.receipt_ttl_ms
    assert on_timer(entry, entry.due_ms, policy).action is TimerAction.DEAD_LETTER


# --- done markers and arrivals ---------------------------------------------------------------


def test_done_marker_recognises_duplicates_for_its_ttl_then_is_forgotten() -> None:
    marker = done_marker(DeliveryStatus.DELIVERED, now_ms=T0)
    assert len(marker.to_bytes()) == 21
    assert marker_status(marker) == (DeliveryStatus.DELIVERED, False)
    assert on_arrival(marker, EntryKind.RECEIPT) is Arrival.AFTER_DONE
    assert on_arrival(marker, EntryKind.SENT) is Arrival.AFTER_DONE
    assert on_timer(marker, T0 + P.done_ttl_ms - 1).action is TimerAction.WAIT
    forget = on_timer(marker, T0 + P.done_ttl_ms)
    assert forget.action is TimerAction.FORGET and forget.entry is None


@pytest.mark.parametrize(
    ("waiting", "incoming", "expected"),
    [
        (None, EntryKind.SENT, Arrival.STORE),
        (None, EntryKind.RECEIPT, Arrival.STORE),  # receipt before the submit outcome
        (EntryKind.RECEIPT, EntryKind.SENT, Arrival.COMPLETE),
        (EntryKind.SENT, EntryKind.RECEIPT, Arrival.COMPLETE),
        (EntryKind.SENT, EntryKind.SENT, Arrival.DUPLICATE),
        (EntryKind.RECEIPT, EntryKind.RECEIPT, Arrival.DUPLICATE),
        (EntryKind.DONE, EntryKind.RECEIPT, Arrival.AFTER_DONE),
        (EntryKind.DONE, EntryKind.SENT, Arrival.AFTER_DONE),
    ],
)
def test_arrival_table(waiting: EntryKind | None, incoming: EntryKind, expected: Arrival) -> None:
    entry = None if waiting is None else PendingEntry(waiting, T0, T0)
    assert on_arrival(entry, incoming) is expected


def test_done_cannot_arrive() -> None:
    with pytest.raises(ValueError):
        on_arrival(None, EntryKind.DONE)


def test_receipt_after_our_own_expired_is_recognised() -> None:
    sent = pending_sent(b"s", sent_at_ms=T0, expires_at_ms=T0 + HOUR)
    expired = on_timer(sent, sent.due_ms)
    assert expired.entry is not None
    assert on_arrival(expired.entry, EntryKind.RECEIPT) is Arrival.AFTER_DONE
    assert marker_status(expired.entry)[1] is True  # we said EXPIRED, not the SMSC


# --- serialisation ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(EntryKind),
    st.integers(-(2**62), 2**62),
    st.integers(-(2**62), 2**62),
    st.integers(0, 255),
    st.binary(max_size=300),
)
def test_pending_entry_round_trip(
    kind: EntryKind, at: int, due: int, attempts: int, payload: bytes
) -> None:
    entry = PendingEntry(kind, at, due, attempts, payload)
    data = entry.to_bytes()
    assert len(data) == 19 + len(payload)
    assert PendingEntry.from_bytes(data) == entry


def test_pending_entry_rejects_garbage_and_legacy_values() -> None:
    for bad in (b"", b"S" + b"avro bytes", b"\x01X" + bytes(17), b"\x02S" + bytes(17)):
        with pytest.raises(StateFormatError):
            PendingEntry.from_bytes(bad)
    with pytest.raises(StateFormatError):
        marker_status(PendingEntry(EntryKind.SENT, T0, T0))
    with pytest.raises(StateFormatError):
        marker_status(PendingEntry(EntryKind.DONE, T0, T0, 0, b"\x09\x00"))


def test_policy_validation() -> None:
    for kwargs in ({"receipt_retry_ms": (5, 5)}, {"receipt_retry_ms": (0,)},
                   {"receipt_ttl_ms": 0}, {"expiry_grace_ms": -1}):
        with pytest.raises(ValueError):
            CorrelationPolicy(**kwargs)


# --- keys ------------------------------------------------------------------------------------


def test_correlation_key_matches_the_topic_keys() -> None:
    assert correlation_key("smsc-a", "2587") == "smsc-a:2587"


def test_alternate_keys() -> None:
    # Configured HEX: "0A1B" is not decimal, and as an opaque string it is "a1b".
    assert alternate_keys("s", "0A1B", IdFormat.HEX) == ("s:a1b",)
    # Configured DEC: as hex it is 0x2587; as a string it equals the decimal form (skipped).
    assert alternate_keys("s", "0002587", IdFormat.DEC) == (f"s:{0x2587}",)
    # An id invalid in the configured format still yields the others.
    assert alternate_keys("s", "msg-1", IdFormat.DEC) == ("s:msg-1",)
    assert alternate_keys("s", "", IdFormat.STR) == ()


# --- the pieces together: a miniature correlator -----------------------------------------------

_SMALL = CorrelationPolicy(
    expiry_grace_ms=10 * SEC, max_validity_ms=HOUR, receipt_retry_ms=(5 * SEC, 20 * SEC),
    receipt_ttl_ms=60 * SEC, done_ttl_ms=30 * SEC,
)

_PART = st.tuples(
    st.integers(0, 100),  # submit outcome arrives at (s)
    st.none() | st.integers(-20, 150),  # receipt arrives, relative to the submit (s); None: never
    st.booleans(),  # receipt duplicated
    st.booleans(),  # submit outcome duplicated (at-least-once redelivery)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_PART, max_size=25), st.lists(st.integers(0, 100), max_size=5))
def test_every_part_ends_exactly_once(
    parts: list[tuple[int, int | None, bool, bool]], orphans: list[int]
) -> None:
    """Drive on_arrival / on_timer / TimerWheel like the correlate agent would: every submitted
    part gets exactly one terminal outcome, and receipts nobody submitted are dead-lettered."""
    validity = 30 * SEC
    arrivals: list[tuple[int, str, EntryKind]] = []
    for i, (sent_s, receipt_s, dup_receipt, dup_sent) in enumerate(parts):
        key = correlation_key("smsc", str(i))
        arrivals.append((T0 + sent_s * SEC, key, EntryKind.SENT))
        if dup_sent:
            arrivals.append((T0 + sent_s * SEC + 1, key, EntryKind.SENT))
        if receipt_s is not None:
            at = T0 + max(0, sent_s + receipt_s) * SEC
            arrivals.append((at, key, EntryKind.RECEIPT))
            if dup_receipt:
                arrivals.append((at + 3 * SEC, key, EntryKind.RECEIPT))
    for j, at_s in enumerate(orphans):
        arrivals.append((T0 + at_s * SEC, correlation_key("smsc", f"orphan{j}"), EntryKind.RECEIPT))
    arrivals.sort(key=lambda a: a[0])

    table: dict[str, PendingEntry] = {}
    wheel = TimerWheel(tick_ms=SEC, slots=16, now_ms=T0)
    terminal: dict[str, list[str]] = {}
    dead: list[str] = []

    def store(key: str, entry: PendingEntry | None) -> None:
        if entry is None:
            table.pop(key, None)
            wheel.cancel(key)
        else:
            table[key] = PendingEntry.from_bytes(entry.to_bytes())  # as a table would
            wheel.schedule(key, entry.due_ms)

    sent_at = {key: at for at, key, kind in reversed(arrivals) if kind is EntryKind.SENT}
    pending = list(arrivals)
    now = T0
    while pending or len(wheel):
        now += SEC
        while pending and pending[0][0] <= now:
            at, key, kind = pending.pop(0)
            waiting = table.get(key)
            action = on_arrival(waiting, kind)
            if action is Arrival.STORE:
                store(key, pending_sent(b"", sent_at_ms=at, expires_at_ms=at + validity,
                                        policy=_SMALL)
                      if kind is EntryKind.SENT else pending_receipt(b"", now_ms=at, policy=_SMALL))
            elif action is Arrival.COMPLETE:
                terminal.setdefault(key, []).append("DELIVERED")
                store(key, done_marker(DeliveryStatus.DELIVERED, now_ms=at, policy=_SMALL))
        for key in wheel.pop_due(now, limit=7):
            decision = on_timer(table[key], now, _SMALL)
            if decision.action is TimerAction.EXPIRE:
                terminal.setdefault(key, []).append("EXPIRED")
            elif decision.action is TimerAction.DEAD_LETTER:
                dead.append(key)
            store(key, decision.entry)
        assert now < T0 + 24 * HOUR

    for key in sent_at:
        assert len(terminal.get(key, [])) == 1, key  # exactly one terminal outcome
    for i, (sent_s, receipt_s, _, _) in enumerate(parts):
        outcome = terminal[correlation_key("smsc", str(i))][0]
        if receipt_s is None:
            assert outcome == "EXPIRED"
        elif max(0, sent_s + receipt_s) * SEC <= sent_s * SEC + validity + _SMALL.expiry_grace_ms:
            assert outcome == "DELIVERED"  # in time, even when it came before the submit
    for j in range(len(orphans)):
        assert correlation_key("smsc", f"orphan{j}") in dead
    assert not table  # everything was eventually forgotten: memory is bounded
