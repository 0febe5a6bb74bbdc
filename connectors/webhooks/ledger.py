"""In-order ack ledger: which offset of each partition is safe to commit.

Reports finish out of order (one tenant's endpoint answers at once, another's retries for
hours), but a committed offset says "everything before this is done". So each partition keeps
its records in consumption order and the committable offset is the oldest unfinished one: a
crash re-reads from there, never past an unfinished report (at-least-once; the reports after
it that had finished are sent again).

Generations: a partition revoked and assigned again starts a new generation; a ticket of an
older one no longer counts (its record will be re-read), so a late finish cannot move the new
owner's commit. Pure and single-threaded: the connector's event loop is the only caller.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AckTicket:
    partition: int
    offset: int
    generation: int


@dataclass
class _Partition:
    generation: int
    pending: deque[int] = field(default_factory=deque)  # tracked, head not yet finished
    finished: set[int] = field(default_factory=set)  # finished, behind an unfinished head
    next_offset: int | None = None  # last tracked + 1


class AckLedger:
    def __init__(self) -> None:
        self._partitions: dict[int, _Partition] = {}
        self._generations = 0

    def assign(self, partition: int) -> None:
        self._generations += 1
        self._partitions[partition] = _Partition(self._generations)

    def revoke(self, partition: int) -> None:
        self._partitions.pop(partition, None)

    def assigned(self) -> list[int]:
        return sorted(self._partitions)

    def track(self, partition: int, offset: int) -> AckTicket:
        """Record taken from the consumer; offsets of a partition arrive in increasing order."""
        state = self._partitions.get(partition)
        if state is None:  # consumed without an assign callback (manual assignment)
            self.assign(partition)
            state = self._partitions[partition]
        if state.next_offset is not None and offset < state.next_offset:
            raise ValueError(
                f"partition {partition}: offset {offset} tracked after {state.next_offset - 1}"
            )
        state.pending.append(offset)
        state.next_offset = offset + 1
        return AckTicket(partition, offset, state.generation)

    def is_current(self, ticket: AckTicket) -> bool:
        state = self._partitions.get(ticket.partition)
        return state is not None and state.generation == ticket.generation

    def finish(self, ticket: AckTicket) -> bool:
        """Mark the ticket's record done. False (and nothing changes) for a stale ticket."""
        if not self.is_current(ticket):
            return False
        state = self._partitions[ticket.partition]
        state.finished.add(ticket.offset)
        while state.pending and state.pending[0] in state.finished:
            state.finished.discard(state.pending.popleft())
        return True

    def committable(self, partition: int) -> int | None:
        """Offset to commit (the next record to read after a restart), None if nothing tracked."""
        state = self._partitions.get(partition)
        if state is None or state.next_offset is None:
            return None
        return state.pending[0] if state.pending else state.next_offset

    def pending(self, partition: int) -> int:
        """Records held in the ledger: the unfinished ones and the finished ones behind them."""
        state = self._partitions.get(partition)
        return len(state.pending) if state else 0
