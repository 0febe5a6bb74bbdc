"""Which Kafka offsets are safe to commit when records finish out of order.

The sender works on many records at once (an SMPP window per bind, retries later), and they
finish in any order. A partition's committed offset may only move past a record once it and
every record before it are finished, else a crash would skip unfinished work. Pure and
single-threaded: the caller serialises access.
"""

from __future__ import annotations

import heapq


class OffsetTracker:
    def __init__(self) -> None:
        self._in_flight: dict[int, list[int]] = {}  # partition → min-heap of unfinished offsets
        self._finished: dict[int, set[int]] = {}  # finished but not yet at the heap's head
        self._next: dict[int, int] = {}  # partition → highest started offset + 1

    def started(self, partition: int, offset: int) -> None:
        heapq.heappush(self._in_flight.setdefault(partition, []), offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def finished(self, partition: int, offset: int) -> None:
        self._finished.setdefault(partition, set()).add(offset)
        heap = self._in_flight.get(partition, [])
        done = self._finished[partition]
        while heap and heap[0] in done:
            done.discard(heapq.heappop(heap))

    def committable(self, partition: int) -> int | None:
        """The offset to commit (next record to read), or None if nothing started."""
        if partition not in self._next:
            return None
        heap = self._in_flight.get(partition)
        return heap[0] if heap else self._next[partition]

    def in_flight(self) -> int:
        return sum(len(heap) for heap in self._in_flight.values())

    def forget(self, partition: int) -> None:
        """Drop a revoked partition: its unfinished records will be redelivered elsewhere."""
        self._in_flight.pop(partition, None)
        self._finished.pop(partition, None)
        self._next.pop(partition, None)
