"""Pure rules of the guarded consumer: what may be committed, and when a record is stranded.

No faust here, so the rules are unit-tested on their own (tests/unit/test_offset_rules.py);
:mod:`pipeline.guarded_consumer` feeds them faust's bookkeeping.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Literal, Protocol, TypeVar

__all__ = ["StallReason", "committable_end", "oldest_in_flight", "stall_reason"]

StallReason = Literal["hole", "off the fetch list", "idle"]

K = TypeVar("K", bound=Hashable)
K_co = TypeVar("K_co", bound=Hashable, covariant=True)


class _Located(Protocol[K_co]):  # a consumed record: its partition and offset
    @property
    def tp(self) -> K_co: ...

    @property
    def offset(self) -> int: ...


def committable_end(processed: set[int], committed: int | None) -> int | None:
    """The offset to commit: one past the run of processed offsets that starts at ``committed``.

    None when there is nothing new to commit, in particular when the record at ``committed``
    itself is not processed: a commit never passes an unprocessed record (faust's own rule lets
    one through). With nothing committed yet, the run starts at the lowest processed offset.
    """
    if not processed:
        return None
    start = min(processed) if committed is None else committed
    end = start
    while end in processed:
        end += 1
    return end if end > start else None


def oldest_in_flight(records: Iterable[_Located[K]]) -> Mapping[K, int]:
    """Per partition, the lowest offset among ``records`` (those taken and not acked)."""
    oldest: dict[K, int] = {}
    for record in records:
        key, offset = record.tp, record.offset
        if offset < oldest.get(key, offset + 1):
            oldest[key] = offset
    return oldest


def stall_reason(
    *,
    committed: int,
    highwater: int | None,
    settled: bool,
    highest_delivered: int | None,
    on_fetch_list: bool,
) -> StallReason | None:
    """Why the record at ``committed`` is stranded, or None if it is not (yet).

    ``settled``: it is processed, in flight in an agent, or queued in a stream's buffer: it will
    be committed in due course. Otherwise, it is stranded if the log has it (``committed <
    highwater``) and later records were delivered (``"hole"``: it was dropped on the way), or the
    partition is not being fetched (``"off the fetch list"``), or — to be confirmed over a longer
    time by the caller — nothing arrives at all (``"idle"``).
    """
    if highwater is None or committed >= highwater or settled:
        return None
    if highest_delivered is not None and highest_delivered >= committed:
        return "hole"
    if not on_fetch_list:
        return "off the fetch list"
    return "idle"
