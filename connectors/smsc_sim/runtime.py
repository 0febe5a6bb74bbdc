"""The simulator's compiled runtime state: counters, traffic profiles, accounts, timer wheels.

Built from :class:`connectors.smsc_sim.config.SimulatorConfig` (profiles can be changed while
running); the timer wheels schedule submit_sm_resp delays and receipts on the event loop
without one asyncio timer per message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from connectors.smpp import codec as P
from connectors.smsc_sim.shares import Share

from .config import (
    AccountConfig,
    ProfileConfig,
    SimulatorConfig,
)

if TYPE_CHECKING:  # the session module needs these classes at run time, not the reverse
    from connectors.smsc_sim.session import _Session

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
    #: Receipts scheduled a second time by ``duplicate_receipt_ratio``.
    receipts_duplicated: int = 0
    submit_errors: int = 0
    receipts_not_requested: int = 0
    receipts_scheduled: int = 0
    receipts_sent: int = 0
    receipts_acked: int = 0
    receipts_nacked: int = 0
    receipts_requeued: int = 0
    receipts_pending: int = 0
    #: Receipts sent on a session and not yet answered (a gauge): the ones a crash of the ESME
    #: leaves unacknowledged, re-sent after it binds again.
    receipts_unacked: int = 0
    #: Accepted submit_sm whose destination and short_message (UDH included) the simulator had
    #: accepted before: the same part reaching the SMSC again. Counted only with the config's
    #: ``count_duplicate_submits``.
    duplicate_submits: int = 0
    enquire_links: int = 0
    unbinds: int = 0
    generic_nacks: int = 0
    refused_connections: int = 0
    #: Most binds any one account held at the same time (bind-lease tests read it).
    peak_account_binds: int = 0

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
        "shed",
        "tokens",
        "total_weight",
        "tps",
    )

    def __init__(self, name: str, cfg: ProfileConfig, now: float) -> None:
        self.name = name
        self.tokens = 0.0
        self.last = now
        self.tps = 0.0
        self.shed = Share(0.0)
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
        if self.shed.ratio != cfg.throttle_ratio:  # a reload keeps the count going
            self.shed = Share(cfg.throttle_ratio)
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

    def sheds(self) -> bool:
        """``throttle_ratio``: True for that fraction of the calls, spread evenly."""
        return self.shed.pick()

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

    def full(self) -> bool:
        """Holding as many binds as the account may (the next bind is refused)."""
        return self.cfg.max_binds is not None and len(self.sessions) >= self.cfg.max_binds


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
