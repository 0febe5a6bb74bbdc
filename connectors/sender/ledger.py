"""The sender's submit ledger: which parts it intended to submit, and which it finished.

Theory of operation. Before a part's ``submit_sm`` is written to an SMSC socket, the sender
writes an INTENT for it to the topic ``sms.sender.ledger`` and waits for Kafka's
acknowledgement (one wait for the whole batch of PDUs). Once the part's outcome is stored on
``sms.sent``, it writes a DONE for it. A part is named ``<message_id>:<part_index>``. A ledger
record goes to the *partition number of the ``sms.throttled`` record* its parts belong to, so
the ledger moves with the sender's partitions: when a sender is assigned ``sms.throttled``
partition *p* (at start, after a crash, on a rebalance) it reads ledger partition *p* before it
consumes a record from it.

Entries are written in *batches*: one record carries the INTENTs of every part of a dispatcher
batch that belongs to one partition, or the DONEs of every part whose outcome was stored in one
round of delivery reports (:class:`LedgerBatch`). One record per part (two per part in all) was
a fifth of the platform's Kafka records and ~67 µs of sender CPU per part. A batch record's key
is unique (``~<sender>:<sequence>``): nothing is compacted away; the topic's retention (a day)
deletes them. Records of the older format, one entry per part keyed by the part, are still read.

Then, for each part of a record it reads (:func:`decide`):

=========================  ==========================  ======================================
ledger says                 this process                action
=========================  ==========================  ======================================
anything                    has the part in flight      SKIP: a re-send of a record in flight
nothing                     does not                    SUBMIT
DONE                        does not                    SKIP: the outcome is on ``sms.sent``
INTENT                      does not                    RESUBMIT_IN_DOUBT (counted, flagged)
=========================  ==========================  ======================================

A part is *in doubt* when its INTENT was stored but the sender died before the SMSC's response
reached ``sms.sent``: the SMSC may or may not have it. Only parts in a window (or in the batch
being written) can be in doubt, so a crash resubmits at most the in-flight window, and each
such resubmission is reported (log, ``in_doubt_resubmits``, header ``smsflow-in-doubt`` on its
``sms.sent`` record). A resubmitted part keeps the concatenation reference of its first
attempt (stored in the INTENT), so a handset still joins it with the parts delivered before.

The value is small JSON (an internal topic, like the other internal topics not an Avro
contract): ``{"s": "I"|"D", "at": <ms>, "parts": {"<part>": <concat reference>, ...}}``; the
older per-part format is ``{"s": "I"|"D", "ref": <concat reference>, "at": <ms>}``.

>>> [(part, entry)] = parse_record(None, LedgerBatch(INTENT, 1, {"m-1:0": 7}).to_bytes())
>>> decide(entry, in_flight_here=False)
<PartAction.RESUBMIT_IN_DOUBT: 'resubmit_in_doubt'>
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import orjson

INTENT: Final = "I"
DONE: Final = "D"
IN_DOUBT_HEADER: Final = "smsflow-in-doubt"


class PartAction(StrEnum):
    SUBMIT = "submit"
    SKIP = "skip"
    RESUBMIT_IN_DOUBT = "resubmit_in_doubt"


def part_key(message_id: str, part_index: int) -> str:
    return f"{message_id}:{part_index}"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    state: str
    ref: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class LedgerBatch:
    """Entries of one state written at one time: the value of one ledger record."""

    state: str
    at_ms: int
    #: part key -> concatenation reference
    parts: dict[str, int]

    def to_bytes(self) -> bytes:
        # Two records per submitted batch of parts: orjson (already the API's encoder) at a
        # fifth of json.dumps' cost. Both escape what must be escaped in part keys (message ids
        # come from tenants' producers); orjson writes other non-ASCII as UTF-8, which
        # json.loads reads back alike. A str it refuses (a lone surrogate) goes through json.
        fields = {"s": self.state, "at": self.at_ms, "parts": self.parts}
        try:
            return orjson.dumps(fields)
        except orjson.JSONEncodeError:
            return json.dumps(fields, separators=(",", ":")).encode()


def parse_record(key: str | None, data: bytes) -> list[tuple[str, LedgerEntry]]:
    """The entries of one ledger record, of either format; ValueError for anything else."""
    raw = json.loads(data)
    if not isinstance(raw, dict) or raw.get("s") not in (INTENT, DONE):
        raise ValueError(f"not a ledger entry: {data[:80]!r}")
    state, at, parts = raw["s"], raw.get("at"), raw.get("parts")
    if parts is None:  # the per-part format: the record's key names the part
        parts = {key: raw.get("ref")}
        if key is None:
            raise ValueError(f"ledger entry without a key: {data[:80]!r}")
    if not isinstance(parts, dict) or not isinstance(at, int):
        raise ValueError(f"ledger record without parts/at: {data[:80]!r}")
    entries = []
    for part, ref in parts.items():
        if isinstance(ref, bool) or not isinstance(ref, int):
            raise ValueError(f"ledger record with a bad reference for {part!r}: {data[:80]!r}")
        entries.append((part, LedgerEntry(state, ref, at)))
    return entries


def decide(entry: LedgerEntry | None, *, in_flight_here: bool) -> PartAction:
    """What to do with one part of a record just read (the table in the module docstring)."""
    if in_flight_here:
        return PartAction.SKIP  # its intent may not even be stored yet
    if entry is None:
        return PartAction.SUBMIT
    if entry.state == DONE:
        return PartAction.SKIP
    return PartAction.RESUBMIT_IN_DOUBT


def fold(current: LedgerEntry | None, new: LedgerEntry) -> LedgerEntry:
    """DONE wins over a later INTENT of the same part (an in-doubt resubmit's stale copy)."""
    if current is not None and current.state == DONE and new.state == INTENT:
        return current
    return new


class LedgerIndex:
    """The entries of the partitions this sender owns, forgotten after ``horizon_ms``.

    Memory stays bounded by the traffic of the horizon; a replay or a worker re-send older than
    the horizon is not recognised (docs/operations.md#in-doubt-parts)."""

    def __init__(self, horizon_ms: int) -> None:
        self.horizon_ms = horizon_ms
        self._entries: dict[str, tuple[int, LedgerEntry]] = {}
        self._order: deque[tuple[int, str]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> LedgerEntry | None:
        found = self._entries.get(key)
        return None if found is None else found[1]

    def put(self, key: str, entry: LedgerEntry, partition: int) -> None:
        previous = self._entries.get(key)
        self._entries[key] = (partition, fold(None if previous is None else previous[1], entry))
        self._order.append((entry.at_ms, key))

    def forget_partition(self, partition: int) -> None:
        """The partition moved to another sender: its entries are that sender's now."""
        for key in [k for k, (p, _e) in self._entries.items() if p == partition]:
            del self._entries[key]

    def prune(self, now_ms: int) -> int:
        """Forget entries older than the horizon; returns how many."""
        dropped = 0
        while self._order and self._order[0][0] < now_ms - self.horizon_ms:
            at_ms, key = self._order.popleft()
            found = self._entries.get(key)
            if found is not None and found[1].at_ms <= at_ms:
                del self._entries[key]
                dropped += 1
        return dropped
