"""The SMSC simulator: an SMPP 3.4 server over TCP, pure asyncio.

Design notes (why it is fast enough for >10k submit_sm/s on one core):

* one :class:`asyncio.Protocol` per connection, no per-PDU tasks or coroutines;
* every callback (a read, a timer firing) appends its output PDUs to per-session lists and ends
  with one ``transport.write`` per touched session;
* submit latency and receipts go through ``runtime._Wheel``, a coarse timer wheel: items due in the
  same millisecond bucket share a single ``loop.call_at``;
* the submit_sm hot path parses only the fields it needs with ``bytes.index`` and builds the
  response from a pre-packed header; configuration is compiled into plain ``__slots__`` objects.

Parts: :mod:`~connectors.smsc_sim.runtime` (counters, profiles, accounts, timer wheels),
:mod:`~connectors.smsc_sim.session` (one connection), this module (the simulator: binds,
submit_sm, receipts, outages) and :mod:`~connectors.smsc_sim.thread` (a background-thread
runner); PDUs come from the project's one codec, :mod:`connectors.smpp.codec`.

Outage semantics: :meth:`SmscSimulator.set_outage` (on) closes every session and makes the SMSC
"unreachable" while on: new connections are accepted and closed straight away (or, if a
``bind_status`` is given, their bind is answered with that error status and then closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

from connectors.smpp import codec as P
from connectors.smsc_sim.runtime import (
    _BIND_NAME,
    _BIND_RESP_OF,
    _HEADER_PACK,
    _MESSAGE_STATE,
    _RECEIPT_WHEEL_RES,
    _RESP_WHEEL_RES,
    ConfigSource,
    SimStats,
    _Account,
    _Profile,
    _Receipt,
    _Wheel,
    log,
)
from connectors.smsc_sim.session import _Session
from connectors.smsc_sim.shares import Share

from .config import (
    ProfileConfig,
    load_config,
)
from .mobile_originated import mo_deliver_sm_body

__all__ = ["SimStats", "SmscSimulator"]


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
        self._twice = Share(self.config.duplicate_receipt_ratio)
        self._twice_after_s = self.config.duplicate_receipt_delay_ms / 1000.0
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
        self._accepted_parts: set[bytes] | None = (
            set() if self.config.count_duplicate_submits else None
        )
        #: Drills: called on the loop right after receipts went out on the sockets (the ESME
        #: has them, unanswered), with the number sent and not yet answered. bench/chaos.py
        #: kills the sender from it, inside the receipt window.
        self.receipts_written_hook: Callable[[int], None] | None = None

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
        st.receipts_unacked = sum(len(s.inflight) for s in self._sessions)
        return st

    def account_binds(self, system_id: str) -> int:
        """Binds the account holds now."""
        account = self._accounts.get(system_id.encode("latin-1"))
        return 0 if account is None else len(account.sessions)

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
        if account.full():
            refuse(P.Status.ESME_RBINDFAIL,
                   f"{body.system_id!r} already holds {len(account.sessions)} binds")
            return
        stats.binds += 1
        session.account = account
        session.bind_type = bind_type
        session.can_submit = command_id != P.BIND_RECEIVER
        session.can_receive = command_id != P.BIND_TRANSMITTER
        resp_body = self._bind_resp_body
        append(_HEADER_PACK(16 + len(resp_body), resp_id, 0, seq) + resp_body)
        account.sessions.append(session)
        stats.peak_account_binds = max(stats.peak_account_binds, len(account.sessions))
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
        if (profile.tps and not profile.take(now)) or (profile.shed and profile.sheds()):
            stats.throttled += 1
            resp = _HEADER_PACK(16, P.SUBMIT_SM_RESP, P.Status.ESME_RTHROTTLED, seq)
        else:
            stats.submits_ok += 1
            seen = self._accepted_parts
            if seen is not None:
                part = dest + b"\x00" + frame[p + 5 : p + 5 + sm_len]
                if part in seen:
                    stats.duplicate_submits += 1
                else:
                    seen.add(part)
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
        if self._twice and self._twice.pick():
            self._stats.receipts_duplicated += 1
            self._receipt_wheel.schedule(now + delay + self._twice_after_s,
                                         _Receipt(account, None, params))

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
        hook = self.receipts_written_hook
        if hook is not None:
            unacked = sum(len(s.inflight) for s in self._sessions)
            if unacked:
                hook(unacked)

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
