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
  ``codec.py`` (smpplib's encoder costs ~140 us per PDU); the responses of one
  read cycle (``deliver_sm_resp`` ...) go out in one write at its end.
* Inbound ``deliver_sm`` / ``data_sm`` go to ``on_deliver(inbound, ack)`` when
  given: the handler answers later, from any thread, with ``ack(status)`` (e.g.
  once Kafka has stored the receipt).  ``ack`` only queues the response and
  wakes the session thread (a socketpair in its selector), which writes all
  queued responses in one write; an ack whose connection has ended is dropped
  (the SMSC re-delivers unacknowledged receipts on the next bind).  The legacy
  ``on_receipt(inbound)`` is acknowledged as soon as it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

import smpplib.client
import smpplib.consts
import smpplib.exceptions
from smpplib import smpp

from smsflow.domain.encoding import SegmentPlan
from smsflow.domain.smpp_status import (
    ESME_RX_T_APPN,
    StatusCategory,
    classify,
    status_name,
)

from .backoff import backoff_delay
from .codec import (
    DATA_SM,
    DATA_SM_RESP,
    DELIVER_SM,
    DELIVER_SM_RESP,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    GENERIC_NACK,
    HEADER,
    MAX_SMSC_PDU_LEN,
    SUBMIT_SM_RESP,
    UNBIND,
    UNBIND_RESP,
    FrameSplitter,
    PduError,
    SubmitSmFields,
    encode_submit_sm_from_prefix,
    pack_pdu,
    parse_data_sm,
    parse_deliver_sm,
    parse_message_id,
    set_sequence,
)
from .models import (
    BindMode,
    BindState,
    ClientStats,
    InboundDeliver,
    PartResult,
    SmppClientClosed,
    SmppClientConfig,
    SubmitResult,
    SubmitTimeout,
)

__all__ = ["AckFunction", "DeliverAck", "PreparedSubmit", "SmppClient", "SubmitOptions"]

log = logging.getLogger("smsflow.smpp.client")

_BIND_METHOD: Final = {
    BindMode.TRANSMITTER: "bind_transmitter",
    BindMode.RECEIVER: "bind_receiver",
    BindMode.TRANSCEIVER: "bind_transceiver",
}
_ESME_RINVCMDID: Final = 0x03
_ESME_RX_P_APPN: Final = 0x65
_ESME_RUNKNOWNERR: Final = 0xFF
_RECV_SIZE: Final = 256 * 1024
# C-string fields of submit_sm: maximum length including the NUL terminator.
_SUBMIT_CSTRING_MAX: Final = {
    "service_type": 6,
    "source_addr": 21,
    "destination_addr": 21,
    "schedule_delivery_time": 17,
    "validity_period": 17,
}
_MAX_SHORT_MESSAGE: Final = 254

ResultCallback = Callable[[SubmitResult], None]
DeliverCallback = Callable[[InboundDeliver], None]
AckFunction = Callable[[int], bool]
DeferredDeliverCallback = Callable[[InboundDeliver, AckFunction], None]
RoomCallback = Callable[[], None]


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """Per-message submit_sm fields (``None`` TON/NPI: the config's defaults)."""

    registered_delivery: int = 1
    source_addr_ton: int | None = None
    source_addr_npi: int | None = None
    dest_addr_ton: int | None = None
    dest_addr_npi: int | None = None
    service_type: str = ""
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""


class _SequenceGenerator:
    """Thread-safe smpplib sequence generator (1 .. 0x7FFFFFFF, wrapping)."""

    MIN_SEQUENCE: Final = 0x00000001
    MAX_SEQUENCE: Final = 0x7FFFFFFF

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sequence = 0

    @property
    def sequence(self) -> int:
        return self._sequence

    def next_sequence(self) -> int:
        with self._lock:
            seq = self._sequence + 1
            if seq > self.MAX_SEQUENCE:
                seq = self.MIN_SEQUENCE
            self._sequence = seq
            return seq


@dataclass(eq=False)
class _Conn:
    """One TCP connection + bind.  ``closed`` is guarded by the write lock."""

    client: Any  # smpplib.client.Client (untyped library)
    sock: socket.socket
    number: int
    last_rx: float
    frames: FrameSplitter = field(default_factory=lambda: FrameSplitter(MAX_SMSC_PDU_LEN))
    enquire_sent_at: float | None = None
    closed: bool = False
    stop_reason: str | None = None
    unbind_seq: int | None = None
    unbind_resp: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)  # set by the teardown
    out: list[bytes] = field(default_factory=list)  # session-thread responses of this cycle
    acks: list[bytes] = field(default_factory=list)  # deferred deliver responses (ack lock)
    freed: bool = False  # a submit_sm_resp freed window room in this read cycle


class DeliverAck:
    """``ack(status)`` for one inbound ``deliver_sm`` / ``data_sm`` (see ``on_deliver``).

    Callable once, from any thread: queues the response (``status`` 0 = ESME_ROK; a non-zero
    status asks the SMSC to deliver it again later) for the connection it arrived on and wakes
    the session thread to write it.  Returns False when it was already answered or its
    connection has ended (dropped: the SMSC re-delivers unacknowledged PDUs on the next bind).
    """

    __slots__ = ("_client", "_command", "_conn", "_done", "_seq")

    def __init__(self, client: SmppClient, conn: _Conn, command: int, seq: int) -> None:
        self._client = client
        self._conn = conn
        self._command = command
        self._seq = seq
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def __call__(self, status: int = 0) -> bool:
        return self._client._queue_ack(self, status)


@dataclass(eq=False, slots=True)
class PreparedSubmit:
    """One message encoded by :meth:`SmppClient.prepare`, ready for
    :meth:`SmppClient.send_prepared` on any bind with the same configuration.  The sequence
    numbers are assigned when it is sent; ``callback`` gets the :class:`SubmitResult`
    (on the session thread of the bind that sent it)."""

    reference: str
    part_seqs: list[int]
    pdus: list[bytearray]
    callback: ResultCallback | None = None

    @property
    def parts(self) -> int:
        return len(self.pdus)


class _Message:
    __slots__ = (
        "callback", "first_sent", "future", "part_seqs", "parts", "reference", "remaining"
    )

    def __init__(
        self, reference: str, part_seqs: list[int], callback: ResultCallback | None = None,
        *, with_future: bool = True,
    ) -> None:
        self.reference = reference
        self.callback = callback
        self.future: Future[SubmitResult] | None = Future() if with_future else None
        # The plan's own part numbers: a resend of plan.select([2, 3]) reports parts 2 and 3.
        self.part_seqs = part_seqs
        self.parts: list[PartResult | None] = [None] * len(part_seqs)
        self.remaining = len(part_seqs)
        self.first_sent = 0.0


@dataclass(slots=True)
class _InFlight:
    message: _Message
    index: int
    sent_at: float


_Completion = tuple[_Message, SubmitResult]


def _refuse_event_loop_thread() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        "SmppClient.submit() blocks the calling thread; from asyncio use `await submit_async()`"
    )


def _check_cstring(name: str, value: str) -> None:
    try:
        encoded = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{name} must be latin-1 text") from None
    if len(encoded) >= _SUBMIT_CSTRING_MAX[name]:
        raise ValueError(f"{name} longer than {_SUBMIT_CSTRING_MAX[name] - 1} characters")
    if "\x00" in value:
        raise ValueError(f"{name} contains NUL")


def _check_octet(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must fit in one octet, got {value}")


class SmppClient:
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
        if self._config.bind_mode is BindMode.RECEIVER:
            raise RuntimeError("a receiver bind cannot submit")
        pdus = self._build_pdus(plan, source_addr, destination_addr, options or SubmitOptions())
        return PreparedSubmit(reference, [segment.seq for segment in plan.segments], pdus,
                              callback)

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

    def _build_pdus(
        self,
        plan: SegmentPlan,
        source_addr: str,
        destination_addr: str,
        options: SubmitOptions,
    ) -> list[bytearray]:
        cfg = self._config
        fields: dict[str, Any] = {
            "service_type": options.service_type,
            "source_addr_ton": (
                cfg.default_source_addr_ton
                if options.source_addr_ton is None
                else options.source_addr_ton
            ),
            "source_addr_npi": (
                cfg.default_source_addr_npi
                if options.source_addr_npi is None
                else options.source_addr_npi
            ),
            "source_addr": source_addr,
            "dest_addr_ton": (
                cfg.default_dest_addr_ton
                if options.dest_addr_ton is None
                else options.dest_addr_ton
            ),
            "dest_addr_npi": (
                cfg.default_dest_addr_npi
                if options.dest_addr_npi is None
                else options.dest_addr_npi
            ),
            "destination_addr": destination_addr,
            "esm_class": plan.esm_class,
            "protocol_id": options.protocol_id,
            "priority_flag": options.priority_flag,
            "schedule_delivery_time": options.schedule_delivery_time,
            "validity_period": options.validity_period,
            "registered_delivery": options.registered_delivery,
            "replace_if_present_flag": 0,
            "data_coding": plan.data_coding,
            "sm_default_msg_id": 0,
        }
        for name in _SUBMIT_CSTRING_MAX:
            _check_cstring(name, fields[name])
        for name in (
            "source_addr_ton",
            "source_addr_npi",
            "dest_addr_ton",
            "dest_addr_npi",
            "esm_class",
            "protocol_id",
            "priority_flag",
            "registered_delivery",
            "data_coding",
        ):
            _check_octet(name, fields[name])
        if not destination_addr:
            raise ValueError("destination_addr is empty")
        head = SubmitSmFields(
            **{name: fields[name] for name in SubmitSmFields.__dataclass_fields__}
        ).encode_prefix()
        pdus = []
        for payload in plan.payloads:
            if len(payload) > _MAX_SHORT_MESSAGE:
                raise ValueError(f"part of {len(payload)} octets > {_MAX_SHORT_MESSAGE}")
            pdus.append(encode_submit_sm_from_prefix(head, payload))
        return pdus

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
        pdus = self._build_pdus(plan, source_addr, destination_addr, options or SubmitOptions())
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

    # ------------------------------------------------------------------ I/O helpers

    def _write_bytes(self, conn: _Conn, data: bytes) -> bool:
        """One ``sendall`` of encoded PDUs under the write lock; on failure drop the
        connection and return False."""
        with self._write_lock:
            if conn.closed:
                return False
            try:
                conn.sock.sendall(data)
                return True
            except OSError as exc:
                failure = exc
        self._abort(conn, f"write failed: {failure!r}")
        return False

    def _flush(self, conn: _Conn) -> bool:
        """Write the responses queued during this read cycle (one write)."""
        if not conn.out:
            return True
        data = b"".join(conn.out)
        conn.out.clear()
        return self._write_bytes(conn, data)

    def _write(self, conn: _Conn, pdu: Any) -> bool:
        """send_pdu under the write lock; on failure drop the connection and return False."""
        with self._write_lock:
            if conn.closed:
                return False
            try:
                conn.client.send_pdu(pdu)
                return True
            except (
                smpplib.exceptions.ConnectionError,
                smpplib.exceptions.PDUError,
                OSError,
            ) as exc:
                failure = exc
        self._abort(conn, f"write failed: {failure!r}")
        return False

    def _abort(self, conn: _Conn, reason: str) -> None:
        """Make the session thread drop ``conn`` (thread-safe, idempotent)."""
        if conn.stop_reason is None:
            conn.stop_reason = reason
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _ignore_error_pdu(pdu: Any) -> None:
        # smpplib's default handler raises PDUError inside listen(); this client never uses
        # listen(), and error statuses are data (classified per submit), not exceptions.
        log.debug("error PDU %s status 0x%08X", getattr(pdu, "command", "?"), pdu.status)

    # ------------------------------------------------------------------ session thread

    def _run(self) -> None:
        attempt = 0
        try:
            while True:
                with self._lock:
                    if self._closing:
                        break
                    self._set_state_locked(BindState.CONNECTING)
                conn: _Conn | None = None
                try:
                    conn = self._open()
                except Exception as exc:
                    with self._lock:
                        self._stats.bind_failures += 1
                    log.warning("%s: connect/bind failed: %s", self._name, _describe(exc))
                if conn is not None:
                    attempt = 0
                    reason = "unknown"
                    try:
                        reason = self._serve(conn)
                    except Exception as exc:
                        log.exception("%s: reader loop failed", self._name)
                        reason = f"internal error: {exc!r}"
                    finally:
                        self._teardown(conn, reason)
                with self._lock:
                    if self._closing:
                        break
                    self._set_state_locked(BindState.DISCONNECTED)
                cfg = self._config
                delay = backoff_delay(
                    attempt,
                    initial=cfg.reconnect_initial_s,
                    maximum=cfg.reconnect_max_s,
                    jitter=cfg.reconnect_jitter,
                    rand=self._rng.random(),
                )
                attempt += 1
                log.info("%s: reconnecting in %.2fs (attempt %d)", self._name, delay, attempt)
                self._stop.wait(delay)
        finally:
            with self._lock:
                self._set_state_locked(BindState.CLOSED)

    def _set_state_locked(self, state: BindState) -> None:
        if self._state is not state:
            log.debug("%s: %s -> %s", self._name, self._state.value, state.value)
            self._state = state
            self._cond.notify_all()

    def _open(self) -> _Conn | None:
        cfg = self._config
        client = smpplib.client.Client(
            cfg.host,
            cfg.port,
            timeout=cfg.connect_timeout_s,
            sequence_generator=self._seq,
            logger_name=f"smsflow.smpp.lib.{self._name}",
            allow_unknown_opt_params=True,
        )
        client.set_error_pdu_handler(self._ignore_error_pdu)
        sock: socket.socket = client._create_socket()
        client._socket = sock
        with self._lock:
            if self._closing:
                _close_client(client)
                return None
            self._connecting_sock = sock
        try:
            client.connect()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            resp = getattr(client, _BIND_METHOD[cfg.bind_mode])(
                system_id=cfg.system_id,
                password=cfg.password,
                system_type=cfg.system_type,
                addr_ton=cfg.addr_ton,
                addr_npi=cfg.addr_npi,
                address_range=cfg.address_range,
            )
            sock.settimeout(cfg.write_timeout_s)
        except BaseException:
            _close_client(client)
            raise
        finally:
            with self._lock:
                self._connecting_sock = None
        with self._lock:
            if self._closing:
                _close_client(client)
                return None
            self._connections += 1
            conn = _Conn(
                client=client, sock=sock, number=self._connections, last_rx=time.monotonic()
            )
            self._conn = conn
            self._stats.binds += 1
            self._set_state_locked(BindState.BOUND)
        self._notify_room()
        smsc = resp.system_id.decode("latin-1") if isinstance(resp.system_id, bytes) else ""
        log.info(
            "%s: bound as %s to %s (connection #%d)",
            self._name,
            cfg.bind_mode.value,
            smsc or "?",
            conn.number,
        )
        return conn

    def _serve(self, conn: _Conn) -> str:
        """Reader loop; returns why the connection ended."""
        poll = self._config.poll_interval_s
        selector = selectors.DefaultSelector()
        selector.register(conn.sock, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while True:
                if self._stop.is_set():
                    return "client closed"
                if conn.stop_reason is not None:
                    return conn.stop_reason
                ready = selector.select(poll)
                now = time.monotonic()
                readable = False
                for key, _events in ready:
                    if key.fileobj is conn.sock:
                        readable = True
                    else:
                        with contextlib.suppress(BlockingIOError, InterruptedError):
                            while self._wake_r.recv(4096):
                                pass
                reason = None
                if readable:
                    try:
                        data = conn.sock.recv(_RECV_SIZE)
                    except (BlockingIOError, InterruptedError, TimeoutError):
                        data = None
                    except OSError as exc:
                        return conn.stop_reason or f"read error: {exc!r}"
                    if data is not None:
                        if not data:
                            return conn.stop_reason or "connection closed by the SMSC"
                        conn.last_rx = now
                        conn.enquire_sent_at = None
                        try:
                            frames = conn.frames.feed(data)
                        except PduError as exc:
                            return f"protocol error: {exc}"
                        for frame in frames:
                            reason = self._dispatch(conn, frame)
                            if reason is not None:
                                break
                # Deferred deliver responses acknowledged since the last cycle (from any thread).
                with self._ack_lock:
                    if conn.acks:
                        conn.out.extend(conn.acks)
                        conn.acks.clear()
                if not self._flush(conn) and reason is None:
                    reason = conn.stop_reason or "write failed"
                if conn.freed:
                    conn.freed = False
                    self._notify_room()
                if reason is not None:
                    return reason
                reason = self._housekeeping(conn, now)
                if reason is not None:
                    return reason
        finally:
            selector.close()

    def _queue_ack(self, ack: DeliverAck, status: int) -> bool:
        """``DeliverAck.__call__``: queue the response on its connection, wake the session
        thread.  Dropped (False) when already answered or the connection has ended."""
        conn = ack._conn
        response = pack_pdu(ack._command, ack._seq, b"\0", status)
        with self._ack_lock:
            if ack._done:
                log.debug("%s: deliver seq=%d answered twice", self._name, ack._seq)
                return False
            ack._done = True
            if status:
                self._stats.delivers_nacked += 1
            if conn.ended.is_set() or conn.stop_reason is not None:
                self._stats.deliver_acks_dropped += 1
                log.debug("%s: connection #%d ended; ack of deliver seq=%d dropped",
                          self._name, conn.number, ack._seq)
                return False
            wake = not conn.acks
            conn.acks.append(response)
        if wake and threading.current_thread() is not self._thread:
            with contextlib.suppress(OSError):  # full pipe: a wake-up is already pending
                self._wake_w.send(b"\0")
        return True

    def _notify_room(self) -> None:
        if self._on_room is not None:
            try:
                self._on_room()
            except Exception:
                log.exception("%s: on_room callback failed", self._name)

    def _housekeeping(self, conn: _Conn, now: float) -> str | None:
        cfg = self._config
        if conn.enquire_sent_at is not None:
            if now - conn.enquire_sent_at > cfg.enquire_link_timeout_s:
                return "enquire_link timeout"
        elif now - conn.last_rx >= cfg.enquire_link_interval_s:
            conn.enquire_sent_at = now
            if not self._write(conn, smpp.make_pdu("enquire_link", client=self._seq)):
                return conn.stop_reason or "write failed"
            self._stats.enquire_links_sent += 1
        with self._lock:
            if self._inflight:
                oldest = next(iter(self._inflight.values()))
                if now - oldest.sent_at > cfg.response_timeout_s:
                    return f"no submit_sm_resp within {cfg.response_timeout_s}s"
        return None

    def _dispatch(self, conn: _Conn, frame: bytes) -> str | None:
        _length, command_id, status, seq = HEADER.unpack_from(frame)
        if command_id == SUBMIT_SM_RESP:
            self._on_submit_resp(seq, status, frame[16:])
            conn.freed = True
        elif command_id == DELIVER_SM or command_id == DATA_SM:
            return self._on_deliver(conn, command_id, seq, frame[16:])
        elif command_id == ENQUIRE_LINK:
            conn.out.append(pack_pdu(ENQUIRE_LINK_RESP, seq))
        elif command_id == ENQUIRE_LINK_RESP:
            pass
        elif command_id == GENERIC_NACK:
            with self._lock:
                ours = seq in self._inflight
            if ours:
                self._on_submit_resp(seq, status or _ESME_RUNKNOWNERR, b"")
                conn.freed = True
            else:
                log.warning(
                    "%s: generic_nack seq=%d status=%s", self._name, seq, status_name(status)
                )
                if seq == conn.unbind_seq:
                    conn.unbind_resp.set()
        elif command_id == UNBIND:
            conn.out.append(pack_pdu(UNBIND_RESP, seq))
            return "unbind requested by the SMSC"
        elif command_id == UNBIND_RESP:
            if seq == conn.unbind_seq:
                conn.unbind_resp.set()
        elif command_id & 0x80000000:
            self._stats.unexpected_pdus += 1
            log.debug("%s: ignoring response 0x%08X seq=%d", self._name, command_id, seq)
        else:
            self._stats.unexpected_pdus += 1
            log.warning("%s: unsupported request 0x%08X; generic_nack", self._name, command_id)
            conn.out.append(pack_pdu(GENERIC_NACK, seq, b"", _ESME_RINVCMDID))
        return None

    def _on_submit_resp(self, seq: int, status: int, body: bytes) -> None:
        now = time.monotonic()
        category = classify(status)
        message_id = parse_message_id(body)
        completion: _Completion | None = None
        with self._lock:
            entry = self._inflight.pop(seq, None)
            if entry is None:
                self._stats.unexpected_pdus += 1
                log.debug("%s: submit_sm_resp for unknown seq=%d", self._name, seq)
                return
            if category is StatusCategory.OK:
                self._stats.resp_ok += 1
            elif category is StatusCategory.BACKPRESSURE:
                self._stats.resp_backpressure += 1
            else:
                self._stats.resp_error += 1
            part = PartResult(
                seq=entry.message.part_seqs[entry.index],
                command_status=status,
                category=category,
                smsc_message_id=message_id,
                latency_s=now - entry.sent_at,
            )
            completion = self._record_locked(entry, part, now)
            self._cond.notify_all()
        if completion is not None:
            self._complete(completion)

    def _record_locked(self, entry: _InFlight, part: PartResult, now: float) -> _Completion | None:
        message = entry.message
        message.parts[entry.index] = part
        message.remaining -= 1
        if message.remaining:
            return None
        parts = tuple(p for p in message.parts if p is not None)
        result = SubmitResult.from_parts(
            message.reference, parts, now - message.first_sent, self._name
        )
        return message, result

    def _complete(self, completion: _Completion) -> None:
        message, result = completion
        if self._on_submit_result is not None:
            try:
                self._on_submit_result(result)
            except Exception:
                log.exception("%s: on_submit_result callback failed", self._name)
        if message.callback is not None:
            try:
                message.callback(result)
            except Exception:
                log.exception("%s: submit result callback failed", self._name)
        if message.future is not None:
            with contextlib.suppress(InvalidStateError):  # the caller may have cancelled it
                message.future.set_result(result)

    def _on_deliver(self, conn: _Conn, command_id: int, seq: int, body: bytes) -> str | None:
        is_deliver = command_id == DELIVER_SM
        resp_command = "deliver_sm_resp" if is_deliver else "data_sm_resp"
        status = 0
        try:
            parsed = parse_deliver_sm(body) if is_deliver else parse_data_sm(body)
        except PduError as exc:
            self._stats.deliver_malformed += 1
            log.warning("%s: malformed %s (%s): %s", self._name, resp_command[:-5], exc, body.hex())
            status = _ESME_RX_P_APPN  # permanent: the SMSC should not resend it as is
        else:
            self._stats.delivers_received += 1
            inbound = InboundDeliver(
                bind_name=self._name,
                source_addr=parsed.source_addr,
                destination_addr=parsed.destination_addr,
                esm_class=parsed.esm_class,
                short_message=parsed.short_message,
                tlvs=parsed.tlvs,
                data_coding=parsed.data_coding,
                source_addr_ton=parsed.source_addr_ton,
                source_addr_npi=parsed.source_addr_npi,
                dest_addr_ton=parsed.dest_addr_ton,
                dest_addr_npi=parsed.dest_addr_npi,
                service_type=parsed.service_type,
                command="deliver_sm" if is_deliver else "data_sm",
            )
            if self._on_deliver_cb is not None:
                ack = DeliverAck(self, conn, DELIVER_SM_RESP if is_deliver else DATA_SM_RESP, seq)
                try:
                    self._on_deliver_cb(inbound, ack)
                except Exception:
                    self._stats.deliver_callback_errors += 1
                    log.exception("%s: on_deliver callback failed", self._name)
                    ack(ESME_RX_T_APPN)  # unless it answered already: resent later
                # Answered by ack(): queued, written at the end of this read cycle (an ack
                # given inside the callback) or when the session thread is woken.
                return None
            if self._on_receipt is not None:
                try:
                    self._on_receipt(inbound)
                except Exception:
                    # Not acknowledged: the SMSC keeps it and delivers it again later.
                    self._stats.deliver_callback_errors += 1
                    log.exception("%s: on_receipt callback failed", self._name)
                    status = ESME_RX_T_APPN
        if status:
            self._stats.delivers_nacked += 1
        # Queued: written with the other responses at the end of this read cycle, always
        # after the callback has handed the receipt on.
        conn.out.append(
            pack_pdu(DELIVER_SM_RESP if is_deliver else DATA_SM_RESP, seq, b"\0", status)
        )
        return None

    def _teardown(self, conn: _Conn, reason: str) -> None:
        """Drop ``conn``: no new registrations, close the socket, report the window as lost."""
        with self._lock:
            if self._conn is conn:
                self._conn = None
            if self._state is BindState.BOUND:
                self._set_state_locked(BindState.DISCONNECTED)
            self._stats.connection_losses += 0 if self._closing else 1
            self._stats.last_disconnect_reason = reason
            if conn.unbind_resp.is_set():
                self._stats.clean_unbinds += 1
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)
        with self._write_lock:
            conn.closed = True
            _close_client(conn.client)
        with self._ack_lock:
            conn.ended.set()
            self._stats.deliver_acks_dropped += len(conn.acks)
            conn.acks.clear()
        now = time.monotonic()
        completions: list[_Completion] = []
        with self._lock:
            lost, self._inflight = self._inflight, {}
            for entry in lost.values():
                part = PartResult(
                    seq=entry.message.part_seqs[entry.index],
                    command_status=None,
                    category=StatusCategory.TEMPORARY,
                    smsc_message_id=None,
                    latency_s=now - entry.sent_at,
                    connection_lost=True,
                )
                completion = self._record_locked(entry, part, now)
                if completion is not None:
                    completions.append(completion)
            self._stats.parts_lost += len(lost)
            self._cond.notify_all()
        level = logging.INFO if self._closing and not lost else logging.WARNING
        log.log(
            level,
            "%s: connection #%d ended (%s); %d in-flight part(s) reported connection_lost",
            self._name,
            conn.number,
            reason,
            len(lost),
        )
        for completion in completions:
            self._complete(completion)
        self._notify_room()

    def _unbind(self, conn: _Conn, deadline: float, budget: float) -> None:
        """close(): drain the window (up to half the budget), then unbind and wait."""
        drain_until = time.monotonic() + budget / 2
        with self._lock:
            self._cond.wait_for(
                lambda: not self._inflight or self._conn is not conn,
                max(0.0, drain_until - time.monotonic()),
            )
            still_up = self._conn is conn
        if not still_up:
            return
        unbind = smpp.make_pdu("unbind", client=self._seq)
        conn.unbind_seq = unbind.sequence
        if not self._write(conn, unbind):
            return
        poll = self._config.poll_interval_s
        while not conn.unbind_resp.is_set() and not conn.ended.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("%s: no unbind_resp before the close timeout", self._name)
                return
            conn.unbind_resp.wait(min(poll, remaining))


def _close_client(client: Any) -> None:
    sock = client._socket
    client._socket = None
    client.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smpplib.exceptions.PDUError) and len(exc.args) > 1:
        return f"bind rejected: {status_name(int(exc.args[1]))}"
    return f"{type(exc).__name__}: {exc}"
