"""Per-SMSC dispatch (connectors/sender/dispatch.py): batching, order, queued-part counts."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from connectors.sender.dispatch import Entry, SmscDispatcher, take_batch
from connectors.smpp.client import PreparedSubmit
from connectors.smpp.models import BindState


def _entry(name: str, parts: int = 1) -> Entry[str]:
    return Entry(name, PreparedSubmit(name, list(range(1, parts + 1)),
                                      [bytearray(16) for _ in range(parts)]))


def _names(entries: Sequence[Entry[str]]) -> list[str]:
    return [e.context for e in entries]


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


# ------------------------------------------------------------------ take_batch


def test_take_batch_takes_the_fifo_prefix_that_fits() -> None:
    queue = deque([_entry("a"), _entry("b", 2), _entry("c"), _entry("d")])
    assert _names(take_batch(queue, room=3, window=10, idle=False)) == ["a", "b"]
    assert _names(queue) == ["c", "d"]


def test_take_batch_never_skips_ahead_of_a_message_that_does_not_fit() -> None:
    queue = deque([_entry("a", 3), _entry("b")])
    assert take_batch(queue, room=2, window=10, idle=False) == []
    assert _names(queue) == ["a", "b"]


def test_a_message_longer_than_the_window_goes_alone_into_an_empty_window() -> None:
    queue = deque([_entry("long", 5), _entry("b")])
    assert take_batch(queue, room=4, window=4, idle=False) == []
    assert _names(take_batch(queue, room=4, window=4, idle=True)) == ["long"]
    assert _names(queue) == ["b"]


# ------------------------------------------------------------------ SmscDispatcher


class FakeBind:
    """A bind with a window; ``send_prepared`` admits what fits and records it."""

    def __init__(self, window: int, state: BindState = BindState.BOUND) -> None:
        self.window = window
        self.in_flight = 0
        self._state = state
        self.sent: list[str] = []
        self.writes = 0
        self.lock = threading.Lock()

    @property
    def state(self) -> BindState:
        return self._state

    @property
    def room(self) -> int:
        with self.lock:
            return self.window - self.in_flight if self._state is BindState.BOUND else 0

    def send_prepared(self, batch: Sequence[PreparedSubmit]) -> int:
        with self.lock:
            admitted = 0
            for item in batch:
                if self.in_flight + len(item.pdus) > self.window and self.in_flight:
                    break
                self.in_flight += len(item.pdus)
                self.sent.append(item.reference)
                admitted += 1
            self.writes += 1 if admitted else 0
            return admitted

    def answer(self, n: int) -> None:
        with self.lock:
            self.in_flight -= n


class Harness:
    def __init__(self, binds: list[FakeBind], window: int,
                 stale: Callable[[str], bool] = lambda _c: False) -> None:
        self.no_bind: list[str] = []
        self.taken: list[str] = []
        self.returned: list[str] = []
        self.dispatcher: SmscDispatcher[str] = SmscDispatcher(
            "smsc-x", binds, window,
            on_no_bind=lambda entries: self.no_bind.extend(_names(entries)),
            is_stale=stale, on_taken=self.taken.append, on_returned=self.returned.append,
            on_bound=lambda: None,
            # Contexts named "p<partition>:…" come from that partition; others from 0.
            partition_of=lambda c: int(c[1:c.index(":")]) if c.startswith("p") else 0,
        )
        self.dispatcher.start()

    def stop(self) -> list[str]:
        return _names(self.dispatcher.stop())


def test_dispatcher_fills_the_window_in_order_and_waits_for_room() -> None:
    bind = FakeBind(window=4)
    h = Harness([bind], window=4)
    try:
        for i in range(10):
            h.dispatcher.put(_entry(f"m{i}"))
        _wait_until(lambda: len(bind.sent) == 4)
        assert h.dispatcher.queued_parts == 6
        bind.answer(4)
        h.dispatcher.wake()
        _wait_until(lambda: len(bind.sent) == 8)
        bind.answer(4)
        h.dispatcher.wake()
        _wait_until(lambda: len(bind.sent) == 10)
        assert bind.sent == [f"m{i}" for i in range(10)]
        assert h.dispatcher.queued_parts == 0
    finally:
        assert h.stop() == []


def test_dispatcher_writes_many_messages_per_call() -> None:
    bind = FakeBind(window=64)
    bind.in_flight = 64  # full: everything put now waits in the queue
    h = Harness([bind], window=64)
    try:
        for i in range(50):
            h.dispatcher.put(_entry(f"m{i}"))
        _wait_until(lambda: h.dispatcher.queued_parts == 50)
        bind.answer(64)
        h.dispatcher.wake()
        _wait_until(lambda: len(bind.sent) == 50)
        assert bind.writes == 1
    finally:
        h.stop()


def test_returned_entries_keep_their_place_and_attempt_count() -> None:
    class Refusing(FakeBind):
        def send_prepared(self, batch: Sequence[PreparedSubmit]) -> int:
            return super().send_prepared(batch[:1])  # admits only one per call

    bind = Refusing(window=3)
    h = Harness([bind], window=3)
    try:
        for i in range(3):
            h.dispatcher.put(_entry(f"m{i}"))
        _wait_until(lambda: len(bind.sent) == 3)
        assert bind.sent == ["m0", "m1", "m2"]
        # Every return undid its take: taken - returned = admitted.
        assert len(h.taken) - len(h.returned) == 3
    finally:
        h.stop()


def test_no_bound_bind_hands_the_queue_back() -> None:
    bind = FakeBind(window=4, state=BindState.DISCONNECTED)
    h = Harness([bind], window=4)
    try:
        h.dispatcher.put(_entry("a"))
        h.dispatcher.put(_entry("b"))
        _wait_until(lambda: h.no_bind == ["a", "b"])
        assert bind.sent == [] and h.dispatcher.queued_parts == 0
    finally:
        h.stop()


def test_stale_entries_are_dropped_not_sent() -> None:
    bind = FakeBind(window=4)
    h = Harness([bind], window=4, stale=lambda context: context.startswith("old"))
    try:
        for name in ("old-1", "new-1", "old-2", "new-2"):
            h.dispatcher.put(_entry(name))
        _wait_until(lambda: len(bind.sent) == 2)
        assert bind.sent == ["new-1", "new-2"]
        assert h.taken == ["new-1", "new-2"]
    finally:
        h.stop()


def test_traffic_spreads_over_binds_with_room() -> None:
    full, free = FakeBind(window=2), FakeBind(window=8)
    full.in_flight = 2
    h = Harness([full, free], window=8)
    try:
        for i in range(6):
            h.dispatcher.put(_entry(f"m{i}"))
        _wait_until(lambda: len(free.sent) == 6)
        assert full.sent == []
    finally:
        h.stop()


def test_stop_returns_what_is_still_queued() -> None:
    bind = FakeBind(window=1)
    h = Harness([bind], window=1)
    for i in range(3):
        h.dispatcher.put(_entry(f"m{i}"))
    _wait_until(lambda: bind.sent == ["m0"])
    assert h.stop() == ["m1", "m2"]


def test_queued_parts_are_counted_per_source_partition() -> None:
    bind = FakeBind(window=2)
    h = Harness([bind], window=2, stale=lambda context: context.endswith("old"))
    try:
        assert h.dispatcher.queued_by_partition() == {}
        for name, parts in (("p1:a", 1), ("p1:b", 1), ("p3:c", 2), ("p1:d", 1),
                            ("p2:old", 1), ("p3:e", 3)):
            h.dispatcher.put(_entry(name, parts))
        _wait_until(lambda: bind.sent == ["p1:a", "p1:b"])
        # a and b are in the window; c (2 parts) waits at the head: nothing else moves.
        assert h.dispatcher.queued_by_partition() == {1: 1, 2: 1, 3: 5}
        assert h.dispatcher.queued_parts == 7
        bind.answer(2)
        h.dispatcher.wake()
        _wait_until(lambda: bind.sent == ["p1:a", "p1:b", "p3:c"])
        bind.answer(2)
        h.dispatcher.wake()
        # d goes, the stale entry is dropped (no longer counted), e (3 > window) waits alone.
        _wait_until(lambda: bind.sent[-1] == "p1:d")
        _wait_until(lambda: h.dispatcher.queued_by_partition() == {3: 3})
        bind.answer(1)
        h.dispatcher.wake()
        _wait_until(lambda: bind.sent[-1] == "p3:e")
        assert h.dispatcher.queued_by_partition() == {}
        assert h.dispatcher.queued_parts == 0
    finally:
        h.stop()


def test_a_queue_handed_back_for_want_of_a_bind_leaves_no_counts() -> None:
    bind = FakeBind(window=4, state=BindState.DISCONNECTED)
    h = Harness([bind], window=4)
    try:
        h.dispatcher.put(_entry("p0:a", 2))
        h.dispatcher.put(_entry("p5:b"))
        _wait_until(lambda: h.no_bind == ["p0:a", "p5:b"])
        assert h.dispatcher.queued_by_partition() == {}
    finally:
        h.stop()
