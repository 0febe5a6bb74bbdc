"""A hashed timer wheel: which keys are due at ``now_ms``, at a bounded cost per call.

Theory of operation
-------------------
Time is cut into ticks of ``tick_ms``. The wheel has ``slots`` slots; a key due in tick ``t``
sits in slot ``t % slots`` when ``t`` is within ``slots`` ticks of the cursor (the oldest tick
not yet emptied; it never passes the tick of the latest ``now_ms``), otherwise in an overflow
heap that feeds the slots as the cursor approaches. So a slot only ever holds keys of one tick,
and every key moves at most once from the heap. A key scheduled in the past joins the cursor's
tick and comes out on the next call.

:meth:`TimerWheel.pop_due` walks the cursor up to ``now_ms``'s tick and returns the keys whose
``due_ms <= now_ms``. Its work (keys examined, heap entries moved, empty slots skipped) is
capped by ``limit``; what it could not reach is returned by the next call, so a timer that
fires every tick never stalls the event loop, even after the wheel was idle for hours (an
empty wheel jumps straight to the next occupied tick). Under such a cap, or for keys due
later within the current tick, a key may come out up to one tick (plus the backlog) late,
never early.

Unlike the other tracking states this is a mutable in-memory index (rescheduling one of a
million keys must cost O(1), not a copy): no I/O and no clock, but not a value. It is local
to one worker and one partition; rebuild it from the table after a restart or rebalance with
:meth:`TimerWheel.from_entries` (every pending entry carries its ``due_ms``).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Final

from smsflow.domain.tracking._codec import StateFormatError

__all__ = ["TimerWheel"]

_OVERFLOW: Final = -1
_MAGIC: Final = b"T"
_VERSION: Final = 1
_HEADER: Final = struct.Struct(">cBqIqI")  # magic, version, tick_ms, slots, cursor, count
_ENTRY: Final = struct.Struct(">qH")  # due_ms, key length


class TimerWheel:
    """Keys scheduled at a due time; :meth:`pop_due` hands out those that are due."""

    __slots__ = ("_cursor", "_due", "_heap", "_in_slots", "_loc", "_n", "_slots", "_stale",
                 "_tick_ms")

    def __init__(self, *, tick_ms: int = 1_000, slots: int = 4_096, now_ms: int = 0) -> None:
        if tick_ms <= 0 or slots <= 0:
            raise ValueError("tick_ms and slots must be positive")
        self._tick_ms = tick_ms
        self._n = slots
        self._cursor = now_ms // tick_ms
        self._slots: list[dict[str, int]] = [{} for _ in range(slots)]
        self._due: dict[str, int] = {}
        self._loc: dict[str, int] = {}
        self._heap: list[tuple[int, int, str]] = []
        self._in_slots = 0
        self._stale = 0

    @classmethod
    def from_entries(
        cls,
        entries: Iterable[tuple[str, int]],
        *,
        now_ms: int,
        tick_ms: int = 1_000,
        slots: int = 4_096,
    ) -> TimerWheel:
        """A wheel holding ``(key, due_ms)`` pairs, e.g. rebuilt from a table partition."""
        wheel = cls(tick_ms=tick_ms, slots=slots, now_ms=now_ms)
        for key, due_ms in entries:
            wheel.schedule(key, due_ms)
        return wheel

    @property
    def tick_ms(self) -> int:
        return self._tick_ms

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def due_ms(self, key: str) -> int | None:
        return self._due.get(key)

    def items(self) -> Iterator[tuple[str, int]]:
        """``(key, due_ms)`` of every scheduled key, in no particular order."""
        return iter(list(self._due.items()))

    def schedule(self, key: str, due_ms: int) -> None:
        """Schedule ``key`` at ``due_ms``, replacing any earlier schedule of it.

        A ``due_ms`` in a tick already passed counts as due in the current tick: it fires with
        that tick's keys (at the latest when the next tick is popped), never before ``due_ms``.
        """
        self._unlink(key)
        self._due[key] = due_ms
        self._place(key, due_ms, max(due_ms // self._tick_ms, self._cursor))

    def cancel(self, key: str) -> bool:
        """Unschedule ``key``; ``False`` if it was not scheduled."""
        return self._unlink(key)

    def pop_due(self, now_ms: int, limit: int = 1_000) -> list[str]:
        """Remove and return keys with ``due_ms <= now_ms``, doing at most ``limit`` units of work.

        A returned key is no longer scheduled; re-:meth:`schedule` it to keep it.
        """
        if limit <= 0:
            raise ValueError("limit must be positive")
        now_tick = now_ms // self._tick_ms
        out: list[str] = []
        budget = limit
        while budget > 0 and self._cursor <= now_tick:
            budget -= self._migrate(budget)
            if self._heap and self._heap[0][0] < self._cursor + self._n:
                break  # budget ran out while feeding slots; continue on the next call
            if self._in_slots == 0:
                # Nothing in the slots: jump to the next tick anything is due in.
                if self._heap and self._heap[0][0] <= now_tick:
                    self._cursor = self._heap[0][0]
                    budget -= 1
                    continue
                self._cursor = now_tick
                break
            slot = self._slots[self._cursor % self._n]
            if self._cursor == now_tick:  # the current tick: only keys already due
                examined = list(islice(slot.items(), budget))
                out.extend(self._take(slot, [k for k, due in examined if due <= now_ms]))
                break
            if not slot:
                self._cursor += 1
                budget -= 1
                continue
            taken = list(islice(slot, budget))
            budget -= len(taken)
            out.extend(self._take(slot, taken))
            if not slot:
                self._cursor += 1
        return out

    def behind(self, now_ms: int) -> bool:
        """True when a :meth:`pop_due` at ``now_ms`` stopped short of ``now_ms``'s tick.

        Keys of past ticks (or heap entries to move) remain: call :meth:`pop_due` again soon
        instead of waiting for the next tick. O(1).
        """
        now_tick = now_ms // self._tick_ms
        return self._cursor < now_tick or bool(self._heap and self._heap[0][0] <= now_tick)

    def _take(self, slot: dict[str, int], keys: list[str]) -> list[str]:
        for key in keys:
            del slot[key]
            del self._loc[key]
            del self._due[key]
        self._in_slots -= len(keys)
        return keys

    def _place(self, key: str, due_ms: int, tick: int) -> None:
        if tick < self._cursor + self._n:
            slot = tick % self._n
            self._slots[slot][key] = due_ms
            self._loc[key] = slot
            self._in_slots += 1
        else:
            heapq.heappush(self._heap, (tick, due_ms, key))
            self._loc[key] = _OVERFLOW

    def _unlink(self, key: str) -> bool:
        loc = self._loc.pop(key, None)
        if loc is None:
            return False
        del self._due[key]
        if loc == _OVERFLOW:
            self._stale += 1
            if self._stale > 64 and self._stale * 2 > len(self._heap):
                self._compact()
        else:
            del self._slots[loc][key]
            self._in_slots -= 1
        return True

    def _valid(self, due_ms: int, key: str) -> bool:
        return self._loc.get(key) == _OVERFLOW and self._due.get(key) == due_ms

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._valid(entry[1], entry[2])]
        heapq.heapify(self._heap)
        self._stale = 0

    def _migrate(self, budget: int) -> int:
        """Move heap entries that entered the slots' span into their slots."""
        moved = 0
        horizon = self._cursor + self._n
        while self._heap and moved < budget and self._heap[0][0] < horizon:
            tick, due_ms, key = heapq.heappop(self._heap)
            moved += 1
            if self._valid(due_ms, key):
                del self._loc[key]
                self._place(key, due_ms, max(tick, self._cursor))
            elif self._stale:
                self._stale -= 1
        return moved

    def to_bytes(self) -> bytes:
        """Every key and due time (about 10 bytes + key per entry)."""
        parts = [_HEADER.pack(_MAGIC, _VERSION, self._tick_ms, self._n, self._cursor,
                              len(self._due))]
        for key, due_ms in self._due.items():
            raw = key.encode()
            parts.append(_ENTRY.pack(due_ms, len(raw)))
            parts.append(raw)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> TimerWheel:
        if len(data) < _HEADER.size:
            raise StateFormatError("too short for a timer wheel")
        magic, version, tick_ms, slots, cursor, count = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION or tick_ms <= 0 or slots <= 0:
            raise StateFormatError(f"not a timer wheel v{_VERSION}")
        wheel = cls(tick_ms=tick_ms, slots=slots, now_ms=cursor * tick_ms)
        offset = _HEADER.size
        for _ in range(count):
            if offset + _ENTRY.size > len(data):
                raise StateFormatError("truncated timer wheel")
            due_ms, size = _ENTRY.unpack_from(data, offset)
            offset += _ENTRY.size
            if offset + size > len(data):
                raise StateFormatError("truncated timer wheel key")
            wheel.schedule(data[offset : offset + size].decode(), due_ms)
            offset += size
        if offset != len(data):
            raise StateFormatError("trailing bytes after a timer wheel")
        return wheel
