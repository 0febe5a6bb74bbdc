"""``SmppClient``: one SMPP bind, owned by one thread, around smpplib.

Threading model (details in ``docs/smpp.md``):

* **Session thread** (one per client, ``smpp-<bind name>``): connects, binds,
  runs the reader loop, answers ``deliver_sm`` / ``enquire_link`` / SMSC
  ``unbind``, sends keep-alive ``enquire_link``, detects timeouts, and on
  connection loss reports the window as ``connection_lost`` and rebinds with
  exponential backoff + jitter.  Both callbacks run on this thread.
* **Caller threads** call :meth:`SmppClient.submit`, which blocks while the
  window (``window_size`` submit_sm awaiting their resp) is full or the bind is
  down, then writes the parts and returns a ``concurrent.futures.Future``.
  Admission is FIFO.  ``submit()`` refuses to run on a thread with a running
  asyncio loop: coroutines use :meth:`SmppClient.submit_async`, which hands
  the blocking part to a dedicated single-thread executor.
* A dispatcher that must never block uses the non-blocking pair instead:
  :meth:`SmppClient.prepare` (encode and check a message once) and
  :meth:`SmppClient.send_prepared` (admit as many prepared messages as the
  window has room for, in order, and write all their PDUs with one socket
  write); ``on_room`` tells it when responses freed window room or the bind
  came up or went down.
* smpplib is not thread-safe for writes: every ``send_pdu`` happens under one
  write lock; sequence numbers come from a locked generator shared with
  smpplib.  Window, correlation map and bind state live under one state lock
  (lock order: write lock, then state lock - never the reverse).
* submit_sm and the responses the session thread sends are encoded by
  :mod:`connectors.smpp.codec` (smpplib's encoder costs ~140 us per PDU); the
  responses of one read cycle (``deliver_sm_resp`` ...) go out in one write at its end.
* Inbound ``deliver_sm`` / ``data_sm`` go to ``on_deliver(inbound, ack)`` when
  given: the handler answers later, from any thread, with ``ack(status)`` (e.g.
  once Kafka has stored the receipt).  ``ack`` only queues the response and
  wakes the session thread (a socketpair in its selector), which writes all
  queued responses in one write; an ack whose connection has ended is dropped
  (the SMSC re-delivers unacknowledged receipts on the next bind).  The legacy
  ``on_receipt(inbound)`` is acknowledged as soon as it returns.

Modules: this one is the caller side (public API, admission, window); the session thread's side
is :mod:`connectors.smpp.session_thread` (a base class of :class:`SmppClient`), the shared
bookkeeping :mod:`connectors.smpp.session_state`, submit_sm encoding
:mod:`connectors.smpp.submit_pdus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from smsflow.domain.encoding import SegmentPlan

from .codec import (
    set_sequence,
)
from .models import (
    BindMode,
    BindState,
    ClientStats,
    SmppClientClosed,
    SmppClientConfig,
    SubmitResult,
    SubmitTimeout,
)
from .session_state import (
    AckFunction,
    DeferredDeliverCallback,
    DeliverAck,
    DeliverCallback,
    PreparedSubmit,
    ResultCallback,
    RoomCallback,
    _Conn,
    _InFlight,
    _Message,
    _SequenceGenerator,
)
from .session_thread import SessionThread
from .submit_pdus import SubmitOptions, build_submit_pdus

__all__ = ["AckFunction", "DeliverAck", "PreparedSubmit", "SmppClient", "SubmitOptions",
           "prepare_submit"]

log = logging.getLogger("smsflow.smpp.client")


def _refuse_event_loop_thread() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        "SmppClient.submit() blocks the calling thread; from asyncio use `await submit_async()`"
    )



def prepare_submit(
    config: SmppClientConfig,
    reference: str,
    plan: SegmentPlan,
    *,
    source_addr: str,
    destination_addr: str,
    options: SubmitOptions | None = None,
    callback: ResultCallback | None = None,
) -> PreparedSubmit:
    """:meth:`SmppClient.prepare` for any bind of ``config``: the PDUs depend on the account's
    settings only, so parts can be prepared while no bind is open (bind leases)."""
    if config.bind_mode is BindMode.RECEIVER:
        raise RuntimeError("a receiver bind cannot submit")
    pdus = build_submit_pdus(config, plan, source_addr, destination_addr,
                             options or SubmitOptions())
    return PreparedSubmit(reference, [segment.seq for segment in plan.segments], pdus, callback)


class SmppClient(SessionThread):
    """A self-healing SMPP 3.4 bind (transceiver by default).  See the module docstring."""

    def __init__(
        self,
        config: SmppClientConfig,
        *,
        on_submit_result: ResultCallback | None = None,
        on_receipt: DeliverCallback | None = None,
        on_deliver: DeferredDeliverCallback | None = None,
        on_room: RoomCallback | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if on_receipt is not None and on_deliver is not None:
            raise ValueError("give on_receipt or on_deliver, not both")
        self._config = config
        self._name = config.bind_name
        self._on_submit_result = on_submit_result
        self._on_receipt = on_receipt
        self._on_deliver_cb = on_deliver
        self._ack_lock = threading.Lock()  # guards _Conn.acks and DeliverAck._done; innermost
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._on_room = on_room
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._seq = _SequenceGenerator()
        self._state = BindState.DISCONNECTED
        self._conn: _Conn | None = None
        self._connecting_sock: socket.socket | None = None
        self._inflight: dict[int, _InFlight] = {}  # sequence_number -> part awaiting resp
        self._admission: deque[object] = deque()  # FIFO of submit() calls waiting for room
        self._started = False
        self._closing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stats = ClientStats()
        self._connections = 0

    # ------------------------------------------------------------------ public API

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> SmppClientConfig:
        return self._config

    @property
    def state(self) -> BindState:
        with self._lock:
            return self._state

    @property
    def in_flight(self) -> int:
        """submit_sm PDUs currently awaiting their resp (the window's occupancy)."""
        with self._lock:
            return len(self._inflight)

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
        with self._lock:
            return dataclasses.replace(self._stats)

    def start(self) -> None:
        """Start the session thread (connect, bind, read, rebind).  Returns at once."""
        with self._lock:
            if self._closing:
                raise SmppClientClosed("client is closed")
            if self._started:
                raise RuntimeError("client already started")
            self._started = True
            self._thread = threading.Thread(
                target=self._run, name=f"smpp-{self._name}", daemon=True
            )
        self._thread.start()

    def wait_until_bound(self, timeout: float | None = None) -> bool:
        """Block until the bind is up (True) or the timeout / close (False)."""
        with self._lock:
            self._cond.wait_for(lambda: self._state is BindState.BOUND or self._closing, timeout)
            return self._state is BindState.BOUND and not self._closing

    def submit(
        self,
        reference: str,
        plan: SegmentPlan,
        *,
        source_addr: str,
        destination_addr: str,
        options: SubmitOptions | None = None,
        timeout: float | None = None,
    ) -> Future[SubmitResult]:
        """Send every part of ``plan``; return a future of the :class:`SubmitResult`.

        Blocks the calling thread while the bind is down or the window has no
        room (``timeout`` bounds that wait: :class:`SubmitTimeout`, nothing
        sent).  Never call it from a coroutine (use :meth:`submit_async`) nor
        from a callback of this client (it would wait for the thread that has
        to free the window).  The result also goes to ``on_submit_result``.
        """
        _refuse_event_loop_thread()
        return self._submit(reference, plan, source_addr, destination_addr, options, timeout)

    async def submit_async(
        self,
        reference: str,
        plan: SegmentPlan,
        *,
        source_addr: str,
        destination_addr: str,
        options: SubmitOptions | None = None,
        timeout: float | None = None,
    ) -> asyncio.Future[SubmitResult]:
        """Asyncio wrapper: awaiting it waits for window admission (backpressure)
        without blocking the loop; the returned future resolves to the result.

        ``fut = await client.submit_async(...); result = await fut``
        """
        loop = asyncio.get_running_loop()
        call = functools.partial(
            self._submit, reference, plan, source_addr, destination_addr, options, timeout
        )
        cf = await loop.run_in_executor(self._get_executor(), call)
        return asyncio.wrap_future(cf, loop=loop)

    @property
    def room(self) -> int:
        """Parts :meth:`send_prepared` would admit now (0 while not bound, closing, or while
        blocking :meth:`submit` calls wait for admission)."""
        with self._lock:
            if self._closing or self._state is not BindState.BOUND or self._admission:
                return 0
            return max(0, self._config.window_size - len(self._inflight))

    def prepare(
        self,
        reference: str,
        plan: SegmentPlan,
        *,
        source_addr: str,
        destination_addr: str,
        options: SubmitOptions | None = None,
        callback: ResultCallback | None = None,
    ) -> PreparedSubmit:
        """Encode and check every part of ``plan`` (``ValueError`` for a field the SMSC cannot
        take); nothing is sent.  Thread-safe and non-blocking."""
        return prepare_submit(self._config, reference, plan, source_addr=source_addr,
                              destination_addr=destination_addr, options=options,
                              callback=callback)

    def send_prepared(self, batch: Sequence[PreparedSubmit]) -> int:
        """Admit the longest prefix of ``batch`` that fits the window (a message with more
        parts than the window goes alone into an empty window), write all its PDUs with one
        socket write, and return how many messages were admitted.  Never waits for the
        window: 0 while the window is full, the bind is down or closing.  Each admitted
        message's result goes to its ``callback`` and to ``on_submit_result``; a lost
        connection reports it ``connection_lost`` like any in-flight part."""
        if self._thread is not None and threading.current_thread() is self._thread:
            raise RuntimeError("send_prepared() from the client's own thread (a callback)")
        chunks: list[bytearray] = []
        admitted = 0
        with self._lock:
            conn = self._conn
            if (
                self._closing or self._state is not BindState.BOUND or conn is None
                or self._admission or not self._started
            ):
                return 0
            window = self._config.window_size
            used = len(self._inflight)
            now = time.monotonic()
            next_sequence = self._seq.next_sequence
            inflight = self._inflight
            parts = 0
            for item in batch:
                count = len(item.pdus)
                if used + count > window and used != 0:
                    break
                message = _Message(item.reference, item.part_seqs, item.callback,
                                   with_future=False)
                message.first_sent = now
                for index, pdu in enumerate(item.pdus):
                    seq = next_sequence()
                    set_sequence(pdu, seq)
                    inflight[seq] = _InFlight(message, index, now)
                    chunks.append(pdu)
                used += count
                parts += count
                admitted += 1
            if not admitted:
                return 0
            self._stats.messages_submitted += admitted
            self._stats.parts_submitted += parts
            data = b"".join(chunks)  # copied under the lock: a resend patches the bytearrays
        # Registered under the state lock while ``conn`` was current: from here on either the
        # resps arrive or the teardown of ``conn`` reports these parts connection_lost.
        self._write_bytes(conn, data)
        return admitted

    def close(self, timeout: float | None = None) -> None:
        """Stop: refuse new submits, let in-flight ones finish, unbind, wait for
        unbind_resp, close the socket and join the session thread.

        Whatever is still in flight at the end is reported ``connection_lost``.
        Idempotent.  Must not be called from a callback of this client.
        """
        if self._thread is not None and threading.current_thread() is self._thread:
            raise RuntimeError("close() from the client's own thread (a callback) would deadlock")
        budget = self._config.close_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + budget
        with self._lock:
            first = not self._closing
            self._closing = True
            conn = self._conn if self._state is BindState.BOUND else None
            if conn is not None:
                self._state = BindState.UNBINDING
            connecting = self._connecting_sock
            self._cond.notify_all()
        if first:
            if conn is None:
                self._stop.set()
                if connecting is not None:
                    with contextlib.suppress(OSError):
                        connecting.shutdown(socket.SHUT_RDWR)
            else:
                self._unbind(conn, deadline, budget)
                self._stop.set()
                self._abort(conn, "client closed")
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()) + self._config.poll_interval_s * 4)
            if thread.is_alive():
                log.error("%s: session thread did not stop in time", self._name)
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._state = BindState.CLOSED
            self._cond.notify_all()
        if thread is None or not thread.is_alive():
            self._wake_w.close()
            self._wake_r.close()

    def __enter__(self) -> SmppClient:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ submit path

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closing:
                raise SmppClientClosed("client is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"smpp-{self._name}-submit"
                )
            return self._executor


    def _submit(
        self,
        reference: str,
        plan: SegmentPlan,
        source_addr: str,
        destination_addr: str,
        options: SubmitOptions | None,
        timeout: float | None,
    ) -> Future[SubmitResult]:
        if self._thread is not None and threading.current_thread() is self._thread:
            raise RuntimeError("submit() from the client's own thread (a callback) would deadlock")
        if self._config.bind_mode is BindMode.RECEIVER:
            raise RuntimeError("a receiver bind cannot submit")
        pdus = build_submit_pdus(
            self._config, plan, source_addr, destination_addr, options or SubmitOptions()
        )
        count = len(pdus)
        message = _Message(reference, [segment.seq for segment in plan.segments])
        window = self._config.window_size
        deadline = None if timeout is None else time.monotonic() + timeout
        token = object()
        with self._lock:
            if not self._started:
                raise RuntimeError("start() the client before submitting")
            self._admission.append(token)
            try:
                while True:
                    if self._closing:
                        raise SmppClientClosed("client is closing")
                    if (
                        self._admission[0] is token
                        and self._state is BindState.BOUND
                        and self._conn is not None
                    ):
                        used = len(self._inflight)
                        # A message with more parts than the window waits for an empty window.
                        if used + count <= window or used == 0:
                            break
                    wait_s: float | None = None
                    if deadline is not None:
                        wait_s = deadline - time.monotonic()
                        if wait_s <= 0:
                            raise SubmitTimeout(
                                f"no bound connection / window room within {timeout}s"
                            )
                    self._cond.wait(wait_s)
                conn = self._conn
                now = time.monotonic()
                message.first_sent = now
                for index, pdu in enumerate(pdus):
                    seq = self._seq.next_sequence()
                    set_sequence(pdu, seq)
                    self._inflight[seq] = _InFlight(message, index, now)
                self._stats.messages_submitted += 1
                self._stats.parts_submitted += count
            finally:
                self._admission.remove(token)
                self._cond.notify_all()
        # Registered under the state lock while ``conn`` was current: from here on either the
        # resps arrive or the teardown of ``conn`` reports these parts connection_lost.
        assert conn is not None and message.future is not None
        self._write_bytes(conn, b"".join(pdus))
        return message.future

