"""The sender's submit ledger: which parts it intended to submit, and which it finished.

Theory of operation. Before a part's ``submit_sm`` is written to an SMSC socket, the sender
writes an INTENT record for it to the compacted topic ``sms.sender.ledger`` and waits for
Kafka's acknowledgement (one record per part, produced for the whole batch, then one wait).
Once the part's outcome is stored on ``sms.sent``, it writes a DONE record under the same key.
Key: ``<message_id>:<part_index>``. The ledger record goes to the *partition number of the
``sms.throttled`` record* it belongs to, so the ledger moves with the sender's partitions:
when a sender is assigned ``sms.throttled`` partition *p* (at start, after a crash, on a
rebalance) it reads ledger partition *p* before it consumes a record from it.

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
contract): ``{"s": "I"|"D", "ref": <concat reference>, "at": <ms>}``.

>>> entry = LedgerEntry.parse(LedgerEntry(INTENT, ref=7, at_ms=1).to_bytes())
>>> decide(entry, in_flight_here=False)
<PartAction.RESUBMIT_IN_DOUBT: 'resubmit_in_doubt'>
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

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

    def to_bytes(self) -> bytes:
        # Formatted, not json.dumps: two of these per part on the sender's hot path.
        return b'{"s":"%s","ref":%d,"at":%d}' % (self.state.encode(), self.ref, self.at_ms)

    @classmethod
    def parse(cls, data: bytes) -> LedgerEntry:
        """ValueError for anything that is not a ledger entry."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("s") not in (INTENT, DONE):
            raise ValueError(f"not a ledger entry: {data[:80]!r}")
        ref, at = raw.get("ref"), raw.get("at")
        if not isinstance(ref, int) or not isinstance(at, int):
            raise ValueError(f"ledger entry without ref/at: {data[:80]!r}")
        return cls(raw["s"], ref, at)


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
