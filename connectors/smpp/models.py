"""Configuration, state and result types of the SMPP client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from smsflow.domain.errors import PermanentError, TransientError
from smsflow.domain.receipts import IdFormat, Receipt, parse_receipt
from smsflow.domain.smpp_status import StatusCategory, status_name

__all__ = [
    "BindMode",
    "BindState",
    "ClientStats",
    "InboundDeliver",
    "PartResult",
    "SmppClientClosed",
    "SmppClientConfig",
    "SubmitResult",
    "SubmitTimeout",
]


class BindMode(Enum):
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"


class BindState(Enum):
    """Lifecycle of one bind; the single source of truth for what the client may do.

    ``DISCONNECTED -> CONNECTING -> BOUND -> (connection lost) -> DISCONNECTED -> ...``;
    ``close()`` moves a bound client to ``UNBINDING`` and every client to ``CLOSED``.
    """

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    BOUND = "bound"
    UNBINDING = "unbinding"
    CLOSED = "closed"


class SmppClientClosed(PermanentError, RuntimeError):
    """The client is closing or closed; nothing was sent."""


class SubmitTimeout(TransientError, TimeoutError):
    """``submit()`` could not get a bound connection and window room in time; nothing was sent."""


_C_STRING_MAX = {"system_id": 16, "password": 9, "system_type": 13, "address_range": 41}


@dataclass(frozen=True, slots=True)
class SmppClientConfig:
    """One bind to one SMSC account."""

    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    bind_mode: BindMode = BindMode.TRANSCEIVER
    #: Name reported in results/receipts and used in logs; default ``system_id@host:port``.
    name: str = ""
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    #: At most this many submit_sm awaiting their submit_sm_resp.
    window_size: int = 32
    #: TCP connect and bind_resp wait.
    connect_timeout_s: float = 5.0
    #: A blocked socket write longer than this drops the connection.
    write_timeout_s: float = 10.0
    #: A submit_sm unanswered for this long drops the connection (its window entries are
    #: then reported ``connection_lost``, like Kannel's wait-ack-expire "reconnect").
    response_timeout_s: float = 30.0
    #: enquire_link is sent after this much silence from the SMSC...
    enquire_link_interval_s: float = 30.0
    #: ... and the connection is dropped if nothing arrives within this after it.
    enquire_link_timeout_s: float = 10.0
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    #: Fraction of each reconnect delay that is randomised away (0 = none, 1 = full jitter).
    reconnect_jitter: float = 0.5
    #: close(): time to let in-flight submits get their resp, then for unbind_resp.
    close_timeout_s: float = 5.0
    #: Reader wake-up period for housekeeping (keep-alive, timeouts, close).
    poll_interval_s: float = 0.05
    default_source_addr_ton: int = 1
    default_source_addr_npi: int = 1
    default_dest_addr_ton: int = 1
    default_dest_addr_npi: int = 1

    def __post_init__(self) -> None:
        for key, limit in _C_STRING_MAX.items():
            value: str = getattr(self, key)
            if len(value.encode("latin-1")) >= limit:
                raise ValueError(f"{key} longer than {limit - 1} characters")
        if not 0 < self.port < 65536:
            raise ValueError("port out of range")
        if self.window_size < 1:
            raise ValueError("window_size must be >= 1")
        for key in (
            "addr_ton",
            "addr_npi",
            "default_source_addr_ton",
            "default_source_addr_npi",
            "default_dest_addr_ton",
            "default_dest_addr_npi",
        ):
            if not 0 <= getattr(self, key) <= 0xFF:
                raise ValueError(f"{key} must fit in one octet")
        for key in (
            "connect_timeout_s",
            "write_timeout_s",
            "response_timeout_s",
            "enquire_link_interval_s",
            "enquire_link_timeout_s",
            "reconnect_initial_s",
            "reconnect_max_s",
            "close_timeout_s",
            "poll_interval_s",
        ):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key} must be > 0")
        if not 0.0 <= self.reconnect_jitter <= 1.0:
            raise ValueError("reconnect_jitter must be within [0, 1]")

    @property
    def bind_name(self) -> str:
        return self.name or f"{self.system_id}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PartResult:
    """Outcome of one submit_sm (one SMS part)."""

    seq: int  # 1-based part number within the message
    command_status: int | None  # None: no response (connection lost)
    category: StatusCategory
    smsc_message_id: str | None  # raw id from submit_sm_resp (normalise with IdFormat)
    latency_s: float  # submit_sm written -> resp read (or -> loss detected)
    connection_lost: bool = False

    @property
    def ok(self) -> bool:
        return self.category is StatusCategory.OK and not self.connection_lost


_SEVERITY = {
    StatusCategory.OK: 0,
    StatusCategory.BACKPRESSURE: 1,
    StatusCategory.TEMPORARY: 2,
    StatusCategory.PERMANENT: 3,
}


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """Outcome of one ``submit()`` (all parts of one message).

    The message succeeded only if every part was accepted.  Otherwise the
    result carries the most severe part outcome (PERMANENT > TEMPORARY >
    BACKPRESSURE); a part whose response never came because the connection
    dropped counts as TEMPORARY with ``command_status=None``, and
    ``connection_lost`` is set: the caller should resubmit (the SMSC may or
    may not have accepted what was in flight - at-least-once).
    """

    reference: str
    command_status: int | None
    category: StatusCategory
    smsc_message_id: str | None  # first part's id (receipts arrive per part: see message_ids)
    parts: tuple[PartResult, ...]
    latency_s: float  # first part written -> last response read
    bind_name: str
    connection_lost: bool = False

    @property
    def ok(self) -> bool:
        return self.category is StatusCategory.OK and not self.connection_lost

    @property
    def message_ids(self) -> tuple[str | None, ...]:
        return tuple(part.smsc_message_id for part in self.parts)

    @property
    def status_name(self) -> str:
        if self.command_status is None:
            return "CONNECTION_LOST"
        return status_name(self.command_status)

    @property
    def failed_parts(self) -> tuple[int, ...]:
        """Part numbers to resend (see ``SegmentPlan.select``)."""
        return tuple(part.seq for part in self.parts if not part.ok)

    @classmethod
    def from_parts(
        cls,
        reference: str,
        parts: tuple[PartResult, ...],
        latency_s: float,
        bind_name: str,
    ) -> SubmitResult:
        worst = max(parts, key=lambda p: _SEVERITY[p.category])  # first of the most severe
        return cls(
            reference=reference,
            command_status=worst.command_status,
            category=worst.category,
            smsc_message_id=parts[0].smsc_message_id,
            parts=parts,
            latency_s=latency_s,
            bind_name=bind_name,
            connection_lost=any(part.connection_lost for part in parts),
        )


@dataclass(frozen=True, slots=True)
class InboundDeliver:
    """A ``deliver_sm`` (or ``data_sm``) from the SMSC: a receipt or a mobile-originated SMS."""

    bind_name: str
    source_addr: str
    destination_addr: str
    esm_class: int
    short_message: bytes
    tlvs: Mapping[int, bytes]
    data_coding: int = 0
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    service_type: str = ""
    command: str = "deliver_sm"

    @property
    def is_receipt(self) -> bool:
        """SMSC delivery receipt or intermediate delivery notification (esm_class bits 2-5)."""
        return (self.esm_class & 0x3C) in (0x04, 0x20)

    def parse_receipt(self, *, id_format: IdFormat) -> Receipt:
        """Parse as a delivery receipt (raises ``ReceiptError``)."""
        return parse_receipt(self.short_message, self.tlvs, id_format=id_format)


@dataclass(slots=True)
class ClientStats:
    """Counters since the client was created (a snapshot when read via ``SmppClient.stats``)."""

    binds: int = 0
    bind_failures: int = 0
    connection_losses: int = 0
    messages_submitted: int = 0
    parts_submitted: int = 0
    resp_ok: int = 0
    resp_backpressure: int = 0
    resp_error: int = 0
    parts_lost: int = 0
    delivers_received: int = 0
    deliver_callback_errors: int = 0
    deliver_malformed: int = 0
    #: deliver_sm / data_sm answered with a non-zero status (callback error or ``ack(status)``).
    delivers_nacked: int = 0
    #: Deferred acknowledgements dropped because their connection had ended (re-delivered).
    deliver_acks_dropped: int = 0
    enquire_links_sent: int = 0
    unexpected_pdus: int = 0
    clean_unbinds: int = 0
    last_disconnect_reason: str = field(default="")
