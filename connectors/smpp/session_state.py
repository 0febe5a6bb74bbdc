"""The client's bookkeeping: connections, sequence numbers, messages in flight, receipt acks.

Shared by the caller side (:mod:`connectors.smpp.client`) and the session thread
(:mod:`connectors.smpp.session_thread`); the locks that guard these objects are the client's.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .codec import (
    MAX_SMSC_PDU_LEN,
    FrameSplitter,
)
from .models import (
    BindMode,
    InboundDeliver,
    PartResult,
    SubmitResult,
)

if TYPE_CHECKING:  # DeliverAck queues its response through the session thread
    from .session_thread import SessionThread

_BIND_METHOD: Final = {
    BindMode.TRANSMITTER: "bind_transmitter",
    BindMode.RECEIVER: "bind_receiver",
    BindMode.TRANSCEIVER: "bind_transceiver",
}
_ESME_RINVCMDID: Final = 0x03
_ESME_RX_P_APPN: Final = 0x65
_ESME_RUNKNOWNERR: Final = 0xFF
_RECV_SIZE: Final = 256 * 1024

ResultCallback = Callable[[SubmitResult], None]
DeliverCallback = Callable[[InboundDeliver], None]
AckFunction = Callable[[int], bool]
DeferredDeliverCallback = Callable[[InboundDeliver, AckFunction], None]
RoomCallback = Callable[[], None]


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

    def __init__(self, client: SessionThread, conn: _Conn, command: int, seq: int) -> None:
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

