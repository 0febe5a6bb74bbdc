"""The client's session thread: connect and bind, read and answer PDUs, keep-alive, teardown.

:class:`SessionThread` is the half of :class:`~connectors.smpp.client.SmppClient` that runs on
its session thread (the threading model is in the client's module docstring), plus the write
helpers both halves use under the write lock. A base class, not a separate object: both halves
share the client's locks, window and counters.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import threading
import time
from concurrent.futures import InvalidStateError
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
from smpplib import smpp

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
    SUBMIT_SM_RESP,
    UNBIND,
    UNBIND_RESP,
    PduError,
    pack_pdu,
    parse_data_sm,
    parse_deliver_sm,
    parse_message_id,
)
from .models import (
    BindState,
    ClientStats,
    InboundDeliver,
    PartResult,
    SmppClientConfig,
    SubmitResult,
)
from .session_state import (
    _BIND_METHOD,
    _ESME_RINVCMDID,
    _ESME_RUNKNOWNERR,
    _ESME_RX_P_APPN,
    _RECV_SIZE,
    DeferredDeliverCallback,
    DeliverAck,
    DeliverCallback,
    ResultCallback,
    RoomCallback,
    _Completion,
    _Conn,
    _InFlight,
    _SequenceGenerator,
)

log = logging.getLogger("smsflow.smpp.client")


class SessionThread:
    """Session-thread side of :class:`~connectors.smpp.client.SmppClient`."""

    # Set by SmppClient.__init__ (the caller side); declared here for the type checker.
    _ack_lock: threading.Lock
    _closing: bool
    _cond: threading.Condition
    _config: SmppClientConfig
    _conn: _Conn | None
    _connecting_sock: socket.socket | None
    _connections: int
    _inflight: dict[int, _InFlight]
    _lock: threading.Lock
    _name: str
    _on_deliver_cb: DeferredDeliverCallback | None
    _on_receipt: DeliverCallback | None
    _on_room: RoomCallback | None
    _on_submit_result: ResultCallback | None
    _rng: random.Random
    _seq: _SequenceGenerator
    _state: BindState
    _stats: ClientStats
    _stop: threading.Event
    _thread: threading.Thread | None
    _wake_r: socket.socket
    _wake_w: socket.socket
    _write_lock: threading.Lock

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
