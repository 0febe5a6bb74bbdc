"""One ESME's TCP connection to the simulator: framing, dispatch, batched writes.

An :class:`asyncio.Protocol`: ``data_received`` splits frames and answers or hands them to the
:class:`~connectors.smsc_sim.server.SmscSimulator` (bind, submit_sm, receipts' responses);
writes are batched per loop iteration and honour transport flow control.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, Any

from connectors.smpp import codec as P
from connectors.smsc_sim.runtime import (
    _BIND_RESP_OF,
    _HEADER_PACK,
    _HEADER_UNPACK_FROM,
    _MAX_SEQ,
    _Account,
    log,
)

if TYPE_CHECKING:  # the server module builds sessions: a run-time import would be circular
    from connectors.smsc_sim.server import SmscSimulator


class _Session(asyncio.Protocol):
    __slots__ = (
        "_close_after_flush",
        "_dirty",
        "_out",
        "_peer",
        "_seq",
        "_splitter",
        "account",
        "bind_type",
        "can_receive",
        "can_submit",
        "closed",
        "inflight",
        "sim",
        "transport",
    )

    def __init__(self, sim: SmscSimulator) -> None:
        self.sim = sim
        self.transport: asyncio.Transport | None = None
        self._splitter = P.FrameSplitter()
        self._out: list[bytes] = []
        self._dirty = False
        self._close_after_flush = False
        self._seq = 0
        self._peer: Any = None
        self.account: _Account | None = None
        self.bind_type: str | None = None
        self.can_submit = False
        self.can_receive = False
        self.closed = False
        self.inflight: dict[int, bytes] = {}

    # ---- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sim = self.sim
        sim._stats.connections += 1
        if sim._outage and sim._outage_bind_status is None:
            sim._stats.refused_connections += 1
            self.closed = True
            transport.abort()
            return
        sim._sessions.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.sim._session_lost(self)

    def pause_writing(self) -> None:
        # The peer is not reading its responses: stop reading its requests (backpressure).
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        sim = self.sim
        try:
            frames = self._splitter.feed(data)
        except P.FrameError as exc:
            log.warning("%s: %s; closing", self._peer, exc)
            self._enqueue(_HEADER_PACK(16, P.GENERIC_NACK, P.Status.ESME_RINVCMDLEN, 0))
            self._close_after_flush = True
            sim._flush()
            return
        if not frames:
            return
        if not self._out and not self._dirty:
            self._dirty = True
            sim._dirty.append(self)
        out = self._out
        append = out.append
        now = sim._loop_time()
        stats = sim._stats
        for frame in frames:
            _, command_id, status, seq = _HEADER_UNPACK_FROM(frame)
            if command_id == P.SUBMIT_SM:
                if self.can_submit:
                    sim._submit(self, frame, seq, now, append)
                else:
                    stats.submits += 1
                    stats.submit_errors += 1
                    append(_HEADER_PACK(16, P.SUBMIT_SM_RESP, P.Status.ESME_RINVBNDSTS, seq))
            elif command_id == P.DELIVER_SM_RESP:
                sim._receipt_resp(self, seq, status)
            elif command_id == P.ENQUIRE_LINK:
                stats.enquire_links += 1
                append(_HEADER_PACK(16, P.ENQUIRE_LINK_RESP, 0, seq))
            elif command_id in _BIND_RESP_OF:
                sim._bind(self, frame, command_id, seq, append)
                if self._close_after_flush:
                    break
            elif command_id == P.UNBIND:
                stats.unbinds += 1
                if self.bind_type is None:
                    append(_HEADER_PACK(16, P.UNBIND_RESP, P.Status.ESME_RINVBNDSTS, seq))
                else:
                    append(_HEADER_PACK(16, P.UNBIND_RESP, 0, seq))
                    self._close_after_flush = True
                    sim._unregister(self)
                    break
            elif command_id == P.GENERIC_NACK:
                # A nack for one of our deliver_sm counts as a negative deliver_sm_resp.
                if seq in self.inflight:
                    sim._receipt_resp(self, seq, status or P.Status.ESME_RSYSERR)
            elif command_id & P.RESPONSE_BIT:
                pass  # unbind_resp / enquire_link_resp / other responses: nothing to do
            else:
                stats.generic_nacks += 1
                append(_HEADER_PACK(16, P.GENERIC_NACK, P.Status.ESME_RINVCMDID, seq))
        sim._flush()

    # ---- output ---------------------------------------------------------------------------

    def _enqueue(self, data: bytes) -> None:
        self._out.append(data)
        if not self._dirty:
            self._dirty = True
            self.sim._dirty.append(self)

    def next_seq(self) -> int:
        seq = self._seq + 1
        if seq > _MAX_SEQ:
            seq = 1
        self._seq = seq
        return seq

    def send_receipt(self, body: bytes) -> None:
        seq = self.next_seq()
        self.inflight[seq] = body
        self._enqueue(_HEADER_PACK(16 + len(body), P.DELIVER_SM, 0, seq) + body)

    def write_out(self) -> None:
        self._dirty = False
        out = self._out
        transport = self.transport
        if transport is not None and out and not self.closed and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        if self._close_after_flush and transport is not None and not transport.is_closing():
            transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
