"""Per-SMSC dispatch: a queue and a thread per SMSC, so a full window never blocks anyone else.

The consumer thread (and the retry thread) only *enqueue* prepared messages. Each SMSC's
dispatcher thread moves them, in FIFO order, into whichever of its binds has window room,
several messages per socket write (``SmppClient.send_prepared``). When every window of an
SMSC is full, only that SMSC's queue waits; the dispatcher sleeps until a bind reports freed
room (``on_room``) or a new entry arrives. When no bind of the SMSC is up, the queue is handed
back to the service (``on_no_bind``), which reschedules or fails the entries over. Before a
batch is written, ``before_send`` must confirm it (the service stores the batch's ledger
intents); if it cannot, the batch goes back to the head of the queue.

Back-pressure is not blocking: each dispatcher counts its queued parts per source partition
(``partition_of``), and the consumer thread pauses and resumes partitions from those counts
(connectors/sender/back_pressure.py).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from connectors.smpp.client import PreparedSubmit
from connectors.smpp.models import BindState

log = logging.getLogger(__name__)

#: A dispatcher with work but no room re-checks its binds at least this often.
IDLE_RECHECK_S = 0.1
#: Messages moved per ``send_prepared`` call at most (bounds one socket write).
MAX_BATCH = 256

T = TypeVar("T")


class SubmitTarget(Protocol):
    """What a dispatcher needs of a bind (``SmppClient``)."""

    @property
    def state(self) -> BindState: ...

    @property
    def room(self) -> int: ...

    def send_prepared(self, batch: Sequence[PreparedSubmit]) -> int: ...


@dataclass(eq=False, slots=True)
class Entry(Generic[T]):
    """One message waiting for window room: the caller's context and the encoded PDUs."""

    context: T
    prepared: PreparedSubmit

    @property
    def parts(self) -> int:
        return len(self.prepared.pdus)


def take_batch(queue: deque[Entry[T]], room: int, window: int, idle: bool) -> list[Entry[T]]:
    """Pop the longest FIFO prefix of ``queue`` whose parts fit in ``room`` (pure).

    A message with more parts than the whole window is taken alone, and only while the
    window is empty (``idle``), as ``send_prepared`` admits it."""
    batch: list[Entry[T]] = []
    used = 0
    while queue and len(batch) < MAX_BATCH:
        parts = queue[0].parts
        if used + parts > room:
            if not batch and parts > window and idle:
                batch.append(queue.popleft())
            break
        batch.append(queue.popleft())
        used += parts
    return batch


class SmscDispatcher(Generic[T]):
    """The queue and thread of one SMSC (see the module docstring)."""

    def __init__(
        self,
        smsc_id: str,
        clients: Sequence[SubmitTarget],
        window: int,
        *,
        on_no_bind: Callable[[list[Entry[T]]], None],
        is_stale: Callable[[T], bool],
        on_taken: Callable[[T], None],
        on_returned: Callable[[T], None],
        on_bound: Callable[[], None],
        before_send: Callable[[list[T]], bool] = lambda _contexts: True,
        partition_of: Callable[[T], int] = lambda _context: 0,
    ) -> None:
        self.smsc_id = smsc_id
        self._clients = list(clients)
        self._window = window
        self._on_no_bind = on_no_bind
        self._is_stale = is_stale
        self._on_taken = on_taken
        self._on_returned = on_returned
        self._on_bound = on_bound
        self._before_send = before_send
        self._partition_of = partition_of
        self._queue: deque[Entry[T]] = deque()
        self._cond = threading.Condition()
        self._dirty = False
        self._stopping = False
        self._next = 0
        self._queued_parts = 0
        self._by_partition: Counter[int] = Counter()  # queued parts per source partition
        self._thread = threading.Thread(target=self._run, name=f"send-{smsc_id}", daemon=True)

    @property
    def queued_parts(self) -> int:
        """Parts waiting in this SMSC's queue (a plain read; exact enough for back-pressure)."""
        return self._queued_parts

    def queued_by_partition(self) -> dict[int, int]:
        """Queued parts per source partition (for partition back-pressure)."""
        with self._cond:
            return {p: n for p, n in self._by_partition.items() if n > 0}

    def _count(self, entries: Sequence[Entry[T]], sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) ``entries`` from the counts; under the lock."""
        by_partition, partition_of = self._by_partition, self._partition_of
        for entry in entries:
            parts = entry.parts * sign
            self._queued_parts += parts
            by_partition[partition_of(entry.context)] += parts

    def set_clients(self, clients: Sequence[SubmitTarget]) -> None:
        """The binds to serve (before :meth:`start`; the binds need :meth:`wake` first)."""
        self._clients = list(clients)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> list[Entry[T]]:
        """Stop the thread; returns what was still queued."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            self._queued_parts = 0
            self._by_partition.clear()
        return left

    def put(self, entry: Entry[T]) -> None:
        with self._cond:
            self._queue.append(entry)
            self._count((entry,), 1)
            self._dirty = True
            self._cond.notify()

    def wake(self) -> None:
        """A bind freed window room, came up or went down (``SmppClient`` ``on_room``)."""
        with self._cond:
            self._dirty = True
            self._cond.notify()

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._dirty and not self._stopping:
                    self._cond.wait(IDLE_RECHECK_S)
                self._dirty = False
                if self._stopping:
                    return
                if not self._queue:
                    continue
            try:
                self._dispatch()
            except Exception:  # never let one bad entry stop an SMSC's traffic for good
                log.exception("dispatcher of %s failed a round", self.smsc_id)

    def _dispatch(self) -> None:
        """Move queued entries into every bind with room until none has room or the queue
        is empty."""
        while True:
            bound = [c for c in self._clients if c.state is BindState.BOUND]
            if not bound:
                with self._cond:
                    entries = list(self._queue)
                    self._queue.clear()
                    self._queued_parts = 0
                    self._by_partition.clear()
                if entries:
                    self._on_no_bind(entries)
                return
            self._on_bound()
            moved = False
            start = self._next
            self._next = (self._next + 1) % len(bound)
            for i in range(len(bound)):
                client = bound[(start + i) % len(bound)]
                room = client.room
                if room <= 0:
                    continue
                with self._cond:
                    batch = take_batch(self._queue, room, self._window,
                                       idle=room >= self._window)
                    self._count(batch, -1)
                if not batch:
                    break  # queue empty
                live = [e for e in batch if not self._is_stale(e.context)]
                if live and not self._before_send([e.context for e in live]):
                    # Their intents are not stored: nothing goes out. Back to the queue, and
                    # tried again at the periodic re-check.
                    with self._cond:
                        self._queue.extendleft(reversed(live))
                        self._count(live, 1)
                    return
                for entry in live:
                    self._on_taken(entry.context)
                admitted = client.send_prepared([e.prepared for e in live]) if live else 0
                if admitted < len(live):
                    back = live[admitted:]
                    for entry in back:
                        self._on_returned(entry.context)
                    with self._cond:
                        self._queue.extendleft(reversed(back))
                        self._count(back, 1)
                moved = moved or admitted > 0 or len(live) < len(batch)
            with self._cond:
                if not self._queue:
                    return
            if not moved:
                return  # every window is full: wait for on_room (or the periodic re-check)
