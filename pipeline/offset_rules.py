"""Pure rules of the guarded consumer: what may be committed, and when a record is stranded.

No faust here, so the rules are unit-tested on their own (tests/unit/pipeline/test_offset_rules.py);
:mod:`pipeline.faust_patches.guarded_consumer` feeds them faust's bookkeeping.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Literal, Protocol, TypeVar

__all__ = ["StallReason", "committable_end", "oldest_in_flight", "stall_reason"]

StallReason = Literal["dropped", "off the fetch list", "idle"]

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
    next_offset: int | None,
    on_fetch_list: bool,
) -> StallReason | None:
    """Why the record at ``committed`` may be stranded, or None if it is not.

    ``settled``: it is processed, or in flight in an agent: it will be committed in due course.
    ``next_offset``: the next offset the consumer will deliver (None: nothing delivered in this
    generation). Otherwise, if the log has the record (``committed < highwater``): it was
    delivered but no agent took it (``"dropped"``: lost from a buffer, unless that buffer is
    merely slow), the partition is not being fetched (``"off the fetch list"``), or nothing
    arrives (``"idle"``). The caller confirms over several rounds before acting.
    """
    if highwater is None or committed >= highwater or settled:
        return None
    if next_offset is not None and committed < next_offset:
        return "dropped"
    if not on_fetch_list:
        return "off the fetch list"
    return "idle"
