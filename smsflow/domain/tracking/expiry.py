"""Correlation entries and their timing rules: self-EXPIRED, unmatched-receipt TTL, done markers.

Theory of operation
-------------------
The DLR correlator keeps one value per ``<smsc_id>:<smsc_message_id>`` key in its pending
table. With this module that value is a :class:`PendingEntry`: a 19-byte header (version, kind,
``at_ms``, ``due_ms``, ``attempts``) followed by a payload. ``due_ms`` is the next time a timer
must look at the key, so a timer index can be rebuilt from the table alone after a restart.

Kinds and what ``at_ms`` means:

* ``SENT``: an accepted submit outcome waits for its receipt. ``at_ms`` is the end of its
  validity period; due ``expiry_grace_ms`` later, when the timer emits ``EXPIRED`` ourselves.
* ``RECEIPT``: a terminal receipt waits for its submit outcome. ``at_ms`` is when it was first
  stored; it is re-checked at ``receipt_retry_ms`` offsets and dead-lettered with reason
  ``RECEIPT_UNMATCHED`` once ``receipt_ttl_ms`` has passed.
* ``DONE``: the part has its terminal outcome. The marker (21 bytes) stays ``done_ttl_ms`` so a
  duplicate receipt or submit outcome is recognised and dropped, not stored as a new wait (and
  later dead-lettered); then the key is forgotten.

What to do when a record arrives is :func:`on_arrival` (one table); what to do when a key is
due is :func:`on_timer`. Both are pure: the agent applies the decision (write, delete, emit).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from smsflow.domain.receipts import DeliveryStatus, IdFormat, ReceiptError, normalize_message_id
from smsflow.domain.tracking._codec import StateFormatError

__all__ = [
    "DEFAULT_CORRELATION_POLICY",
    "REASON_RECEIPT_UNMATCHED",
    "SELF_EXPIRED_REASON",
    "Arrival",
    "CorrelationPolicy",
    "EntryKind",
    "PendingEntry",
    "TimerAction",
    "TimerDecision",
    "alternate_keys",
    "correlation_key",
    "done_marker",
    "expiry_due_ms",
    "marker_status",
    "on_arrival",
    "on_timer",
    "pending_receipt",
    "pending_sent",
]

#: Dead-letter reason code of a receipt that found no submit outcome within its TTL.
REASON_RECEIPT_UNMATCHED: Final = "RECEIPT_UNMATCHED"
#: ``PartOutcome.reason`` of an EXPIRED we emit ourselves.
SELF_EXPIRED_REASON: Final = "no receipt before the validity period ended"


@dataclass(frozen=True, slots=True)
class CorrelationPolicy:
    expiry_grace_ms: int = 600_000  # after the validity end, wait this long for a late receipt
    max_validity_ms: int = 72 * 3_600_000  # cap on expires_at - sent_at (bad data guard)
    receipt_retry_ms: tuple[int, ...] = (60_000, 300_000, 900_000)  # checks after first seen
    receipt_ttl_ms: int = 3_600_000  # unmatched receipts are dead-lettered after this
    done_ttl_ms: int = 3_600_000  # duplicates are recognised this long after completion

    def __post_init__(self) -> None:
        if min(self.expiry_grace_ms, self.max_validity_ms, self.done_ttl_ms) < 0:
            raise ValueError("durations must be >= 0")
        if self.receipt_ttl_ms <= 0:
            raise ValueError("receipt_ttl_ms must be positive")
        retries = self.receipt_retry_ms
        if any(r <= 0 for r in retries) or list(retries) != sorted(set(retries)):
            raise ValueError("receipt_retry_ms must be positive and strictly increasing")


DEFAULT_CORRELATION_POLICY: Final = CorrelationPolicy()


class EntryKind(StrEnum):
    SENT = "S"
    RECEIPT = "R"
    DONE = "D"


_VERSION: Final = 1
_HEADER: Final = struct.Struct(">BcqqB")  # version, kind, at, due, attempts
_STATUSES: Final = tuple(DeliveryStatus)
#: Entry kinds by their byte in the header: a dict lookup, where ``EntryKind(...)`` costs a
#: microsecond per entry read (enum's call machinery), on every receipt and submit outcome.
_KINDS: Final[dict[bytes, EntryKind]] = {kind.value.encode(): kind for kind in EntryKind}


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """One value of the correlator's pending table (see the module docstring)."""

    kind: EntryKind
    at_ms: int
    due_ms: int
    attempts: int = 0
    payload: bytes = b""

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(_VERSION, self.kind.value.encode(), self.at_ms, self.due_ms,
                              min(self.attempts, 255))
        return header + self.payload

    @classmethod
    def from_bytes(cls, data: bytes) -> PendingEntry:
        if len(data) < _HEADER.size:
            raise StateFormatError("too short for a pending entry")
        version, kind, at_ms, due_ms, attempts = _HEADER.unpack_from(data)
        if version != _VERSION:
            raise StateFormatError(f"not a pending entry v{_VERSION}")
        entry_kind = _KINDS.get(kind)
        if entry_kind is None:
            raise StateFormatError(f"unknown entry kind {kind!r}")
        return cls(entry_kind, at_ms, due_ms, attempts, bytes(data[_HEADER.size :]))


def expiry_due_ms(
    sent_at_ms: int, expires_at_ms: int, policy: CorrelationPolicy = DEFAULT_CORRELATION_POLICY
) -> int:
    """When to emit EXPIRED for an accepted part with no receipt.

    The validity end is ``expires_at_ms`` clamped to ``[sent_at_ms, sent_at_ms +
    max_validity_ms]``; the part is due ``expiry_grace_ms`` after it.
    """
    end = min(max(expires_at_ms, sent_at_ms), sent_at_ms + policy.max_validity_ms)
    return end + policy.expiry_grace_ms


def pending_sent(
    payload: bytes,
    *,
    sent_at_ms: int,
    expires_at_ms: int,
    policy: CorrelationPolicy = DEFAULT_CORRELATION_POLICY,
) -> PendingEntry:
    """Entry for an accepted submit outcome waiting for its receipt."""
    due = expiry_due_ms(sent_at_ms, expires_at_ms, policy)
    return PendingEntry(EntryKind.SENT, due - policy.expiry_grace_ms, due, 0, payload)


def _receipt_due(at_ms: int, attempts: int, policy: CorrelationPolicy) -> int:
    ttl_end = at_ms + policy.receipt_ttl_ms
    if attempts < len(policy.receipt_retry_ms):
        return min(at_ms + policy.receipt_retry_ms[attempts], ttl_end)
    return ttl_end


def pending_receipt(
    payload: bytes, *, now_ms: int, policy: CorrelationPolicy = DEFAULT_CORRELATION_POLICY
) -> PendingEntry:
    """Entry for a terminal receipt waiting for its submit outcome (first seen ``now_ms``)."""
    return PendingEntry(EntryKind.RECEIPT, now_ms, _receipt_due(now_ms, 0, policy), 0, payload)


def done_marker(
    status: DeliveryStatus,
    *,
    now_ms: int,
    self_expired: bool = False,
    policy: CorrelationPolicy = DEFAULT_CORRELATION_POLICY,
) -> PendingEntry:
    """Marker left under the key once the part has its terminal ``status``."""
    payload = bytes((_STATUSES.index(status), 1 if self_expired else 0))
    return PendingEntry(EntryKind.DONE, now_ms, now_ms + policy.done_ttl_ms, 0, payload)


def marker_status(entry: PendingEntry) -> tuple[DeliveryStatus, bool]:
    """``(status, self_expired)`` of a DONE marker."""
    if entry.kind is not EntryKind.DONE or len(entry.payload) != 2:
        raise StateFormatError("not a done marker")
    index, flag = entry.payload
    if index >= len(_STATUSES):
        raise StateFormatError("unknown status in done marker")
    return _STATUSES[index], bool(flag)


class Arrival(StrEnum):
    """What the correlator does with an incoming submit outcome or receipt."""

    STORE = "STORE"  # nothing waits under the key: store the incoming entry
    COMPLETE = "COMPLETE"  # its counterpart waits: emit the part outcome, store a done marker
    DUPLICATE = "DUPLICATE"  # the same kind already waits (at-least-once copy): drop
    AFTER_DONE = "AFTER_DONE"  # the part is complete: drop (a receipt after our EXPIRED too)


_ARRIVALS: Final[dict[tuple[EntryKind | None, EntryKind], Arrival]] = {
    (None, EntryKind.SENT): Arrival.STORE,
    (None, EntryKind.RECEIPT): Arrival.STORE,
    (EntryKind.RECEIPT, EntryKind.SENT): Arrival.COMPLETE,
    (EntryKind.SENT, EntryKind.RECEIPT): Arrival.COMPLETE,
    (EntryKind.SENT, EntryKind.SENT): Arrival.DUPLICATE,
    (EntryKind.RECEIPT, EntryKind.RECEIPT): Arrival.DUPLICATE,
    (EntryKind.DONE, EntryKind.SENT): Arrival.AFTER_DONE,
    (EntryKind.DONE, EntryKind.RECEIPT): Arrival.AFTER_DONE,
}


def on_arrival(waiting: PendingEntry | None, incoming: EntryKind) -> Arrival:
    """Decide on a submit outcome (``SENT``) or terminal receipt (``RECEIPT``) for a key."""
    if incoming is EntryKind.DONE:
        raise ValueError("only SENT or RECEIPT arrive")
    return _ARRIVALS[(None if waiting is None else waiting.kind, incoming)]


class TimerAction(StrEnum):
    WAIT = "WAIT"  # not due (the timer index was early or stale): keep, reschedule at entry.due
    EXPIRE = "EXPIRE"  # emit EXPIRED for the waiting submit outcome; store the done marker
    RETRY = "RETRY"  # unmatched receipt checkpoint: count it, store the rescheduled entry
    DEAD_LETTER = "DEAD_LETTER"  # unmatched receipt past its TTL: dead-letter it, delete key
    FORGET = "FORGET"  # done marker past its TTL: delete key


@dataclass(frozen=True, slots=True)
class TimerDecision:
    action: TimerAction
    entry: PendingEntry | None  # value to store under the key; None: delete the key
    reason: str | None = None  # dead-letter reason code


def on_timer(
    entry: PendingEntry, now_ms: int, policy: CorrelationPolicy = DEFAULT_CORRELATION_POLICY
) -> TimerDecision:
    """Decide on a key the timer found due (or thinks is due) at ``now_ms``."""
    if entry.kind is EntryKind.RECEIPT and now_ms >= entry.at_ms + policy.receipt_ttl_ms:
        return TimerDecision(TimerAction.DEAD_LETTER, None, REASON_RECEIPT_UNMATCHED)
    if now_ms < entry.due_ms:
        return TimerDecision(TimerAction.WAIT, entry)
    if entry.kind is EntryKind.SENT:
        marker = done_marker(
            DeliveryStatus.EXPIRED, now_ms=now_ms, self_expired=True, policy=policy
        )
        return TimerDecision(TimerAction.EXPIRE, marker, SELF_EXPIRED_REASON)
    if entry.kind is EntryKind.RECEIPT:
        attempts = entry.attempts + 1
        due = _receipt_due(entry.at_ms, attempts, policy)
        return TimerDecision(TimerAction.RETRY, replace(entry, attempts=attempts, due_ms=due))
    return TimerDecision(TimerAction.FORGET, None)


def correlation_key(smsc_id: str, smsc_message_id: str) -> str:
    """Key of ``sms.sent``, ``sms.dlr.raw`` and the pending table: ``<smsc>:<normalised id>``."""
    return f"{smsc_id}:{smsc_message_id}"


def alternate_keys(smsc_id: str, raw_message_id: str, configured: IdFormat) -> tuple[str, ...]:
    """Keys the raw id would have under the *other* id formats (for a misconfigured SMSC).

    A receipt still unmatched at a RETRY checkpoint may have been normalised with the wrong
    :class:`IdFormat`. These keys usually hash to other partitions: re-publish the receipt to
    ``sms.dlr.raw`` under them rather than looking them up in the local table.
    """
    keys: list[str] = []
    try:
        own = correlation_key(smsc_id, normalize_message_id(raw_message_id, configured))
    except ReceiptError:
        own = None
    for fmt in IdFormat:
        if fmt is configured:
            continue
        try:
            key = correlation_key(smsc_id, normalize_message_id(raw_message_id, fmt))
        except ReceiptError:
            continue
        if key != own and key not in keys:
            keys.append(key)
    return tuple(keys)
