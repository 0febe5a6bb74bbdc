"""The SMSC simulator: an SMPP 3.4 server over TCP, pure asyncio.

Design notes (why it is fast enough for >10k submit_sm/s on one core):

* one :class:`asyncio.Protocol` per connection, no per-PDU tasks or coroutines;
* every callback (a read, a timer firing) appends its output PDUs to per-session lists and ends
  with one ``transport.write`` per touched session;
* submit latency and receipts go through :class:`_Wheel`, a coarse timer wheel: items due in the
  same millisecond bucket share a single ``loop.call_at``;
* the submit_sm hot path parses only the fields it needs with ``bytes.index`` and builds the
  response from a pre-packed header; configuration is compiled into plain ``__slots__`` objects.

Outage semantics: :meth:`SmscSimulator.set_outage` (on) closes every session and makes the SMSC
"unreachable" while on: new connections are accepted and closed straight away (or, if a
``bind_status`` is given, their bind is answered with that error status and then closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

from . import pdu as P
from .config import (
    AccountConfig,
    ProfileConfig,
    SimulatorConfig,
    load_config,
)
from .mobile_originated import mo_deliver_sm_body

__all__ = ["SimStats", "SimulatorThread", "SmscSimulator"]

log = logging.getLogger("smsflow.smsc_sim")

ConfigSource = SimulatorConfig | Mapping[str, Any] | str | Path | None

_HEADER_PACK = P.HEADER.pack
_HEADER_UNPACK_FROM = P.HEADER.unpack_from

_BIND_RESP_OF = {
    P.BIND_TRANSMITTER: P.BIND_TRANSMITTER_RESP,
    P.BIND_RECEIVER: P.BIND_RECEIVER_RESP,
    P.BIND_TRANSCEIVER: P.BIND_TRANSCEIVER_RESP,
}
_BIND_NAME = {
    P.BIND_TRANSMITTER: "transmitter",
    P.BIND_RECEIVER: "receiver",
    P.BIND_TRANSCEIVER: "transceiver",
}
_MESSAGE_STATE = {
    b"DELIVRD": int(P.MessageState.DELIVERED),
    b"EXPIRED": int(P.MessageState.EXPIRED),
    b"UNDELIV": int(P.MessageState.UNDELIVERABLE),
    b"REJECTD": int(P.MessageState.REJECTED),
}
_MAX_SEQ = 0x7FFFFFFF
_RESP_WHEEL_RES = 0.001
_RECEIPT_WHEEL_RES = 0.002


@dataclasses.dataclass
class SimStats:
    """Counters since start (``sessions`` and ``receipts_pending`` are gauges).

    Supports both ``stats.submits`` and ``stats["submits"]``.
    """

    connections: int = 0
    binds: int = 0
    bind_failures: int = 0
    sessions: int = 0
    submits: int = 0
    submits_ok: int = 0
    throttled: int = 0
    submit_errors: int = 0
    receipts_not_requested: int = 0
    receipts_scheduled: int = 0
    receipts_sent: int = 0
    receipts_acked: int = 0
    receipts_nacked: int = 0
    receipts_requeued: int = 0
    receipts_pending: int = 0
    enquire_links: int = 0
    unbinds: int = 0
    generic_nacks: int = 0
    refused_connections: int = 0

    def __getitem__(self, key: str) -> int:
        value: int = getattr(self, key)
        return value

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def copy(self) -> SimStats:
        return dataclasses.replace(self)


# --------------------------------------------------------------------------------------------
# Runtime (compiled) configuration
# --------------------------------------------------------------------------------------------


class _Profile:
    __slots__ = (
        "burst",
        "cfg",
        "delay_s",
        "failures",
        "jitter",
        "last",
        "latency_s",
        "name",
        "ratio",
        "tokens",
        "total_weight",
        "tps",
    )

    def __init__(self, name: str, cfg: ProfileConfig, now: float) -> None:
        self.name = name
        self.tokens = 0.0
        self.last = now
        self.tps = 0.0
        self.apply(cfg, now)

    def apply(self, cfg: ProfileConfig, now: float) -> None:
        old_tps = self.tps
        self.cfg = cfg
        self.latency_s = cfg.submit_latency_ms / 1000.0
        self.ratio = cfg.delivery_ratio
        self.delay_s = cfg.receipt_delay_ms / 1000.0
        self.jitter = cfg.receipt_jitter
        cum = 0.0
        failures: list[tuple[float, bytes, int, bytes]] = []
        for f in cfg.failure_status:
            cum += f.weight
            netcode = bytes((f.network_type,)) + f.err.to_bytes(2, "big")
            failures.append((cum, f.stat.encode(), f.err, netcode))
        self.failures = failures
        self.total_weight = cum
        self.tps = float(cfg.throttle_tps or 0.0)
        self.burst = float(cfg.throttle_burst or max(1.0, self.tps))
        if self.tps != old_tps:
            self.tokens = self.burst
            self.last = now

    def take(self, now: float) -> bool:
        """Token bucket: True if a submit may pass now."""
        tokens = self.tokens + (now - self.last) * self.tps
        if tokens > self.burst:
            tokens = self.burst
        self.last = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False

    def pick_failure(self, rnd: float) -> tuple[float, bytes, int, bytes]:
        x = rnd * self.total_weight
        for entry in self.failures:
            if x < entry[0]:
                return entry
        return self.failures[-1]


class _Account:
    __slots__ = ("cfg", "password", "pending", "receivers", "rr", "sessions")

    def __init__(self, cfg: AccountConfig) -> None:
        self.cfg = cfg
        self.password = cfg.password
        self.receivers: list[_Session] = []
        self.sessions: list[_Session] = []
        self.pending: deque[bytes] = deque()
        self.rr = 0

    def allows(self, bind_type: str) -> bool:
        return self.cfg.bind_types is None or bind_type in self.cfg.bind_types


class _Receipt:
    """A receipt waiting for its time: either the data to build it or the built body."""

    __slots__ = ("account", "body", "params")

    def __init__(self, account: _Account, body: bytes | None, params: tuple[Any, ...] | None):
        self.account = account
        self.body = body
        self.params = params


T = TypeVar("T")


class _Wheel(Generic[T]):
    """Coarse timer wheel: all items due within one ``resolution`` bucket share a timer."""

    __slots__ = ("_buckets", "_handler", "_handles", "_inv", "_loop", "_res")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        resolution: float,
        handler: Callable[[list[T]], None],
    ) -> None:
        self._loop = loop
        self._res = resolution
        self._inv = 1.0 / resolution
        self._handler = handler
        self._buckets: dict[int, list[T]] = {}
        self._handles: dict[int, asyncio.TimerHandle] = {}

    def schedule(self, when: float, item: T) -> None:
        tick = int(when * self._inv) + 1
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = [item]
            self._handles[tick] = self._loop.call_at(tick * self._res, self._fire, tick)
        else:
            bucket.append(item)

    def _fire(self, tick: int) -> None:
        self._handles.pop(tick, None)
        items = self._buckets.pop(tick, None)
        if items:
            self._handler(items)

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def items(self) -> list[T]:
        return [i for b in self._buckets.values() for i in b]

    def cancel(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._buckets.clear()


# --------------------------------------------------------------------------------------------
# Session (one TCP connection)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Simulator
# --------------------------------------------------------------------------------------------


class SmscSimulator:
    """An SMPP 3.4 SMSC over TCP. Create, ``await start()``, read ``.port``, ``await stop()``.

    All methods must be called from the event loop thread the simulator runs on (use
    :class:`SimulatorThread` from synchronous code).
    """

    def __init__(self, config: ConfigSource = None, host: str = "127.0.0.1", port: int = 0):
        self.config = load_config(config)
        self.host = host
        self._requested_port = port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stats = SimStats()
        self._sessions: set[_Session] = set()
        self._dirty: list[_Session] = []
        self._outage = self.config.outage
        self._outage_bind_status: int | None = None
        self._rng = random.Random(self.config.seed)
        self._accounts: dict[bytes, _Account] = {
            a.system_id.encode("latin-1"): _Account(a) for a in self.config.accounts
        }
        self._profiles: dict[str, _Profile] = {}
        self._prefixes: dict[bytes, _Profile] = {}
        self._prefix_lens: list[int] = []
        self._route_cache: dict[bytes, _Profile] = {}
        self._default: _Profile | None = None
        start = self.config.message_id_start
        if start is None:
            # Unique across restarts: seconds since 2024 in the high bits.
            start = (int(time.time()) - 1_704_067_200) << 20
        self._next_msg_id = start
        self._hex_ids = self.config.message_id_format == "hex"
        receipt_ids = self.config.receipt_id_format
        self._receipt_ids: str | None = (
            None if receipt_ids in ("same", self.config.message_id_format) else receipt_ids
        )
        self._receipt_text = self.config.receipt_format in ("text", "both")
        self._receipt_tlv = self.config.receipt_format in ("tlv", "both")
        self._window = self.config.receipt_window
        self._retry_s = self.config.receipt_retry_ms / 1000.0
        self._bind_resp_body = (
            self.config.system_id.encode("latin-1")
            + b"\x00"
            + P.encode_tlvs({P.Tag.SC_INTERFACE_VERSION: bytes((P.SMPP_VERSION_34,))})
        )
        self._date_minute = -1
        self._date_str = b""
        self._resp_wheel: _Wheel[tuple[_Session, bytes]] | None = None
        self._receipt_wheel: _Wheel[_Receipt] | None = None
        self._loop_time: Callable[[], float] = time.monotonic

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_time = loop.time
        now = loop.time()
        for name, cfg in self.config.profiles.items():
            self._profiles[name] = _Profile(name, cfg, now)
        self._rebuild_routes()
        self._resp_wheel = _Wheel(loop, _RESP_WHEEL_RES, self._fire_responses)
        self._receipt_wheel = _Wheel(loop, _RECEIPT_WHEEL_RES, self._fire_receipts)
        self._server = await loop.create_server(
            lambda: _Session(self), self.host, self._requested_port, backlog=512
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("SMSC simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.abort()
        self._sessions.clear()
        if self._resp_wheel is not None:
            self._resp_wheel.cancel()
        if self._receipt_wheel is not None:
            self._receipt_wheel.cancel()
        await server.wait_closed()
        # Let the aborted transports run connection_lost.
        await asyncio.sleep(0)
        log.info("SMSC simulator on port %d stopped", self.port)

    async def __aenter__(self) -> SmscSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # ---- knobs --------------------------------------------------------------------------------

    @property
    def stats(self) -> SimStats:
        """Live counters (gauges refreshed on access)."""
        st = self._stats
        st.sessions = sum(1 for s in self._sessions if s.bind_type is not None)
        pending = sum(len(a.pending) for a in self._accounts.values())
        scheduled = len(self._receipt_wheel) if self._receipt_wheel is not None else 0
        st.receipts_pending = pending + scheduled
        return st

    @property
    def outage(self) -> bool:
        return self._outage

    def set_outage(self, on: bool, *, bind_status: int | None = None) -> None:
        """Whole-SMSC outage. On: close every session and refuse new ones until turned off.

        Refusal is an immediate close of the TCP connection, or, with ``bind_status`` (for
        example ``Status.ESME_RSYSERR``), a bind_resp with that status followed by a close.
        Receipts keep accruing while the SMSC is down and are delivered after re-bind.
        """
        self._outage = bool(on)
        self._outage_bind_status = int(bind_status) if (on and bind_status is not None) else None
        if on:
            for session in list(self._sessions):
                session.close()
        log.info("outage %s", "ON" if on else "OFF")

    def set_profile(self, name: str, **changes: Any) -> ProfileConfig:
        """Change a profile at runtime (any :class:`ProfileConfig` field). Returns the new one."""
        profile = self._profiles.get(name)
        if profile is None:
            raise KeyError(f"unknown profile {name!r}; known: {sorted(self._profiles)}")
        cfg = ProfileConfig.model_validate({**profile.cfg.model_dump(), **changes})
        for other in self._profiles.values():
            clash = set(cfg.prefixes) & set(other.cfg.prefixes) if other is not profile else None
            if clash:
                raise ValueError(f"prefixes {sorted(clash)} already belong to {other.name!r}")
        profile.apply(cfg, self._loop_time())
        if "prefixes" in changes:
            self._rebuild_routes()
        log.info("profile %s changed: %s", name, changes)
        return cfg

    def profile(self, name: str) -> ProfileConfig:
        return self._profiles[name].cfg

    def profile_for(self, destination: str) -> str:
        """Name of the profile a destination address routes to."""
        return self._route(destination.encode("latin-1")).name

    # ---- routing ------------------------------------------------------------------------------

    def _rebuild_routes(self) -> None:
        self._prefixes = {
            prefix.encode("latin-1"): prof
            for prof in self._profiles.values()
            for prefix in prof.cfg.prefixes
        }
        self._prefix_lens = sorted({len(p) for p in self._prefixes}, reverse=True)
        self._route_cache = {}
        self._default = self._profiles[self.config.default_profile]

    def _route(self, dest: bytes) -> _Profile:
        prof = self._route_cache.get(dest)
        if prof is not None:
            return prof
        key = dest[1:] if dest[:1] == b"+" else dest
        prefixes = self._prefixes
        found: _Profile | None = None
        for n in self._prefix_lens:
            if n <= len(key):
                found = prefixes.get(key[:n])
                if found is not None:
                    break
        if found is None:
            assert self._default is not None
            found = self._default
        cache = self._route_cache
        if len(cache) > 100_000:
            cache.clear()
        cache[dest] = found
        return found

    # ---- session events -----------------------------------------------------------------------

    def _flush(self) -> None:
        dirty = self._dirty
        if not dirty:
            return
        self._dirty = []
        for session in dirty:
            session.write_out()

    def _bind(
        self,
        session: _Session,
        frame: bytes,
        command_id: int,
        seq: int,
        append: Callable[[bytes], object],
    ) -> None:
        resp_id = _BIND_RESP_OF[command_id]
        stats = self._stats

        def refuse(status: int, why: str) -> None:
            stats.bind_failures += 1
            log.info("bind refused (%s) from %s: 0x%02x", why, session._peer, status)
            append(_HEADER_PACK(16, resp_id, status, seq))
            session._close_after_flush = True

        if session.bind_type is not None:
            stats.bind_failures += 1
            append(_HEADER_PACK(16, resp_id, P.Status.ESME_RALYBND, seq))
            return
        if self._outage:
            refuse(self._outage_bind_status or P.Status.ESME_RSYSERR, "outage")
            return
        try:
            body = P.Bind.decode(frame)
        except P.PduError as exc:
            refuse(exc.status, f"malformed: {exc}")
            return
        account = self._accounts.get(body.system_id.encode("latin-1"))
        if account is None:
            refuse(P.Status.ESME_RINVSYSID, f"unknown system_id {body.system_id!r}")
            return
        if body.password != account.password:
            refuse(P.Status.ESME_RINVPASWD, f"wrong password for {body.system_id!r}")
            return
        bind_type = _BIND_NAME[command_id]
        if not account.allows(bind_type):
            refuse(P.Status.ESME_RBINDFAIL, f"{bind_type} not allowed for {body.system_id!r}")
            return
        stats.binds += 1
        session.account = account
        session.bind_type = bind_type
        session.can_submit = command_id != P.BIND_RECEIVER
        session.can_receive = command_id != P.BIND_TRANSMITTER
        resp_body = self._bind_resp_body
        append(_HEADER_PACK(16 + len(resp_body), resp_id, 0, seq) + resp_body)
        account.sessions.append(session)
        if session.can_receive:
            account.receivers.append(session)
            self._drain(account)
        log.info("%s bound as %s from %s", body.system_id, bind_type, session._peer)

    def _unregister(self, session: _Session) -> None:
        """Detach a session from its account; unacknowledged receipts go back to the queue."""
        account = session.account
        session.can_submit = session.can_receive = False
        if account is None:
            return
        session.account = None
        with contextlib.suppress(ValueError):
            account.sessions.remove(session)
        with contextlib.suppress(ValueError):
            account.receivers.remove(session)
        if session.inflight:
            bodies = list(session.inflight.values())
            session.inflight.clear()
            self._stats.receipts_requeued += len(bodies)
            account.pending.extendleft(reversed(bodies))
            self._drain(account)

    def _session_lost(self, session: _Session) -> None:
        self._sessions.discard(session)
        self._unregister(session)
        session.bind_type = None
        self._flush()

    # ---- submit -------------------------------------------------------------------------------

    def _submit(
        self,
        session: _Session,
        frame: bytes,
        seq: int,
        now: float,
        append: Callable[[bytes], object],
    ) -> None:
        stats = self._stats
        stats.submits += 1
        index = frame.index
        try:
            p = index(0, 16) + 1  # service_type
            src_start = p + 2
            e = index(0, src_start)  # source_addr
            dst_start = e + 3
            e = index(0, dst_start)  # destination_addr
            dest = frame[dst_start:e]
            p = index(0, e + 4) + 1  # schedule_delivery_time
            p = index(0, p) + 1  # validity_period
            rd = frame[p] & 3
            sm_len = frame[p + 4]
            if p + 5 + sm_len > len(frame):
                raise IndexError
        except (ValueError, IndexError):
            stats.submit_errors += 1
            append(_HEADER_PACK(16, P.SUBMIT_SM_RESP, P.Status.ESME_RINVCMDLEN, seq))
            return
        profile = self._route(dest)
        if profile.tps and not profile.take(now):
            stats.throttled += 1
            resp = _HEADER_PACK(16, P.SUBMIT_SM_RESP, P.Status.ESME_RTHROTTLED, seq)
        else:
            stats.submits_ok += 1
            n = self._next_msg_id = self._next_msg_id + 1
            mid = b"%x" % n if self._hex_ids else b"%d" % n
            resp = _HEADER_PACK(17 + len(mid), P.SUBMIT_SM_RESP, 0, seq) + mid + b"\x00"
            if rd == 1 or rd == 2:
                rng = self._rng
                delivered = rng.random() < profile.ratio
                if rd == 1 or not delivered:
                    self._schedule_receipt(
                        session, profile, frame, mid, src_start, dst_start, dest, p, sm_len,
                        delivered, now,
                    )
            else:  # registered_delivery 0 (or the reserved 3): the ESME wants no receipt
                stats.receipts_not_requested += 1
        if profile.latency_s:
            assert self._resp_wheel is not None
            self._resp_wheel.schedule(now + profile.latency_s, (session, resp))
        else:
            append(resp)

    def _fire_responses(self, items: list[tuple[_Session, bytes]]) -> None:
        for session, resp in items:
            if not session.closed:
                session._enqueue(resp)
        self._flush()

    # ---- receipts -----------------------------------------------------------------------------

    def _date(self, t: float) -> bytes:
        minute = int(t // 60)
        if minute != self._date_minute:
            self._date_minute = minute
            self._date_str = time.strftime("%y%m%d%H%M", time.gmtime(t)).encode()
        return self._date_str

    def _schedule_receipt(
        self,
        session: _Session,
        profile: _Profile,
        frame: bytes,
        mid: bytes,
        src_start: int,
        dst_start: int,
        dest: bytes,
        p: int,
        sm_len: int,
        delivered: bool,
        now: float,
    ) -> None:
        account = session.account
        assert account is not None and self._receipt_wheel is not None
        rng = self._rng
        # Receipt: from the submit's destination, to its source (addresses with TON/NPI).
        src_part = frame[src_start - 2 : dst_start - 2]  # ton, npi, source_addr\0
        dst_part = frame[dst_start - 2 : dst_start + len(dest) + 1]  # ton, npi, dest\0
        text = frame[p + 5 : p + 5 + min(sm_len, 20)]
        if sm_len == 0 and len(frame) > p + 5:
            with contextlib.suppress(P.PduError):
                payload = P.decode_tlvs(frame, p + 5).get(P.Tag.MESSAGE_PAYLOAD)
                if payload:
                    text = payload[:20]
        failure = None if delivered else profile.pick_failure(rng.random())
        delay = profile.delay_s
        if delay and profile.jitter:
            delay *= 1.0 + profile.jitter * (2.0 * rng.random() - 1.0)
        if self._receipt_ids is not None:  # the same id, written the other way
            n = int(mid, 16 if self._hex_ids else 10)
            mid = b"%x" % n if self._receipt_ids == "hex" else b"%d" % n
        params = (mid, dst_part, src_part, text, self._date(time.time()), failure)
        self._stats.receipts_scheduled += 1
        self._receipt_wheel.schedule(now + delay, _Receipt(account, None, params))

    def _build_receipt(self, params: tuple[Any, ...]) -> bytes:
        mid, dst_part, src_part, text, submit_date, failure = params
        if failure is None:
            stat, err, dlvrd, netcode = b"DELIVRD", 0, b"001", b"\x03\x00\x00"
        else:
            _, stat, err, netcode = failure
            dlvrd = b"000"
        if self._receipt_text:
            sm = b"id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%03d text:%s" % (
                mid, dlvrd, submit_date, self._date(time.time()), stat, err, text,
            )
            if len(sm) > 254:
                sm = sm[:254]
        else:
            sm = b""
        tlvs = b""
        if self._receipt_tlv:
            tlvs = b"".join(
                (
                    b"\x00\x1e", (len(mid) + 1).to_bytes(2, "big"), mid, b"\x00",
                    b"\x04\x27\x00\x01", bytes((_MESSAGE_STATE[stat],)),
                    b"\x04\x23\x00\x03", netcode,
                )
            )
        # service_type "", source = submit dest, dest = submit source, esm_class 0x04 (receipt),
        # protocol_id, priority, schedule "", validity "", registered_delivery, replace, dcs,
        # sm_default_msg_id, sm_length.
        return b"".join(
            (
                b"\x00", dst_part, src_part, b"\x04\x00\x00\x00\x00\x00\x00\x00\x00",
                bytes((len(sm),)), sm, tlvs,
            )
        )

    def originate(self, system_id: str, source: str, destination: str, text: str) -> None:
        """Inject an MO message to ``system_id``'s receiver binds (queued like a receipt;
        counted in the receipt counters). Raises ``KeyError`` for an unknown account."""
        account = self._accounts[system_id.encode("latin-1")]
        body = mo_deliver_sm_body(source, destination, text)
        self._fire_receipts([_Receipt(account, body, None)])

    def _fire_receipts(self, items: list[_Receipt]) -> None:
        touched: set[_Account] = set()
        for receipt in items:
            body = receipt.body
            if body is None:
                assert receipt.params is not None
                body = self._build_receipt(receipt.params)
            receipt.account.pending.append(body)
            touched.add(receipt.account)
        for account in touched:
            self._drain(account)
        self._flush()

    def _drain(self, account: _Account) -> None:
        """Send queued receipts round-robin to the account's receiver-capable sessions."""
        pending = account.pending
        receivers = account.receivers
        if not pending or not receivers:
            return
        window = self._window
        stats = self._stats
        n = len(receivers)
        rr = account.rr
        while pending:
            for i in range(n):
                session = receivers[(rr + i) % n]
                if len(session.inflight) < window and not session.closed:
                    rr = (rr + i + 1) % n
                    session.send_receipt(pending.popleft())
                    stats.receipts_sent += 1
                    break
            else:
                break  # every receiver's window is full
        account.rr = rr

    def _receipt_resp(self, session: _Session, seq: int, status: int) -> None:
        body = session.inflight.pop(seq, None)
        if body is None:
            return
        account = session.account
        if status == 0:
            self._stats.receipts_acked += 1
        else:
            self._stats.receipts_nacked += 1
            if account is not None and self._receipt_wheel is not None:
                self._receipt_wheel.schedule(
                    self._loop_time() + self._retry_s, _Receipt(account, body, None)
                )
        if account is not None and account.pending:
            self._drain(account)


# --------------------------------------------------------------------------------------------
# Background-thread runner for synchronous code (tests, smpplib clients)
# --------------------------------------------------------------------------------------------


R = TypeVar("R")


class SimulatorThread:
    """Run an :class:`SmscSimulator` on its own event loop in a daemon thread.

    ::

        with SimulatorThread(config) as sim:
            client = smpplib.client.Client("127.0.0.1", sim.port, allow_unknown_opt_params=True)
            ...
            sim.set_outage(True)
            print(sim.stats.submits)

    Knob methods are thread-safe (they run on the simulator's loop and wait for the result).
    ``.sim`` is the simulator itself; only touch it from the loop (see :meth:`call`).
    """

    def __init__(
        self, config: ConfigSource = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.sim = SmscSimulator(config, host=host, port=port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.sim.port

    @property
    def host(self) -> str:
        return self.sim.host

    def start(self, timeout: float = 10.0) -> SimulatorThread:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="smsc-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("SMSC simulator did not start")
        if self._error is not None:
            raise RuntimeError("SMSC simulator failed to start") from self._error
        return self

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop_event = asyncio.Event()
            try:
                await self.sim.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stop_event.wait()
            finally:
                await self.sim.stop()

        try:
            asyncio.run(main())
        except BaseException as exc:  # pragma: no cover - surfaced through start()
            self._error = exc
            self._ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def call(self, fn: Callable[..., R], *args: Any, timeout: float = 10.0, **kwargs: Any) -> R:
        """Run ``fn(*args, **kwargs)`` on the simulator's loop and return its result."""
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("simulator thread not running")
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        fut: Future[R] = Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                fut.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    # Thread-safe knobs ---------------------------------------------------------------------

    def set_outage(self, on: bool, *, bind_status: int | None = None) -> None:
        self.call(self.sim.set_outage, on, bind_status=bind_status)

    def set_profile(self, name: str, **changes: Any) -> ProfileConfig:
        return self.call(self.sim.set_profile, name, **changes)

    def originate(self, system_id: str, source: str, destination: str, text: str) -> None:
        """See :meth:`SmscSimulator.originate`."""
        self.call(self.sim.originate, system_id, source, destination, text)

    @property
    def stats(self) -> SimStats:
        """A consistent snapshot of the counters."""
        return self.call(lambda: self.sim.stats.copy())

    def wait_for(
        self, predicate: Callable[[SimStats], bool], timeout: float = 10.0, interval: float = 0.01
    ) -> SimStats:
        """Poll ``predicate(stats)`` until true; raise ``TimeoutError`` with the last stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats
            if predicate(stats):
                return stats
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s; stats={stats}")
            time.sleep(interval)
