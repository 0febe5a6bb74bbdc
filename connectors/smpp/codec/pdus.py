"""SMPP 3.4 PDUs as objects: bind, submit_sm, deliver_sm and their responses, both directions.

The simulator's view (it must read and answer every PDU it supports). C-Octet Strings decode as
latin-1, so ``encode(decode(x)) == x`` for any well-formed PDU; ``short_message`` stays
``bytes``; TLVs are kept as ``{tag: raw value}``, unknown tags included, re-encoded in insertion
order. Any other command id decodes into a :class:`Pdu` whose ``body`` is the raw body bytes, so
callers can answer it with ``generic_nack``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TypeAlias

from connectors.smpp.codec.constants import (
    _ADDR,
    _BIND_TAIL,
    _SM_FLAGS,
    _SM_MID,
    BIND_RECEIVER,
    BIND_RECEIVER_RESP,
    BIND_TRANSCEIVER,
    BIND_TRANSCEIVER_RESP,
    BIND_TRANSMITTER,
    BIND_TRANSMITTER_RESP,
    DELIVER_SM,
    DELIVER_SM_RESP,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    GENERIC_NACK,
    HEADER,
    HEADER_LEN,
    RESPONSE_BIT,
    SMPP_VERSION_34,
    SUBMIT_SM,
    SUBMIT_SM_RESP,
    UNBIND,
    UNBIND_RESP,
    CommandId,
    Status,
)
from connectors.smpp.codec.primitives import (
    FrameError,
    PduError,
    _cstr,
    decode_tlvs,
    encode_tlvs,
    read_cstring,
)


@dataclass(slots=True)
class Bind:
    """Body of bind_transmitter / bind_receiver / bind_transceiver."""

    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = SMPP_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def encode(self) -> bytes:
        return b"".join(
            (
                _cstr(self.system_id),
                _cstr(self.password),
                _cstr(self.system_type),
                _BIND_TAIL.pack(self.interface_version, self.addr_ton, self.addr_npi),
                _cstr(self.address_range),
            )
        )

    @classmethod
    def decode(cls, buf: bytes, pos: int = HEADER_LEN) -> Bind:
        system_id, pos = read_cstring(buf, pos, 16)
        password, pos = read_cstring(buf, pos, 9)
        system_type, pos = read_cstring(buf, pos, 13)
        if len(buf) - pos < 3:
            raise PduError("bind body truncated", Status.ESME_RINVCMDLEN)
        version, ton, npi = _BIND_TAIL.unpack_from(buf, pos)
        address_range, pos = read_cstring(buf, pos + 3, 41)
        return cls(system_id, password, system_type, version, ton, npi, address_range)


@dataclass(slots=True)
class BindResp:
    """Body of bind_*_resp: ``system_id`` plus optional TLVs (``sc_interface_version``)."""

    system_id: str = ""
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        return _cstr(self.system_id) + encode_tlvs(self.tlvs)

    @classmethod
    def decode(cls, buf: bytes, pos: int = HEADER_LEN) -> BindResp:
        if pos >= len(buf):  # error responses carry no body
            return cls()
        system_id, pos = read_cstring(buf, pos, 16)
        return cls(system_id, decode_tlvs(buf, pos))


@dataclass(slots=True)
class MessageIdResp:
    """Body of submit_sm_resp and deliver_sm_resp."""

    message_id: str = ""
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        return _cstr(self.message_id) + encode_tlvs(self.tlvs)

    @classmethod
    def decode(cls, buf: bytes, pos: int = HEADER_LEN) -> MessageIdResp:
        if pos >= len(buf):  # error responses carry no body
            return cls()
        message_id, pos = read_cstring(buf, pos, 65)
        return cls(message_id, decode_tlvs(buf, pos))


@dataclass(slots=True)
class SubmitSm:
    """Body of submit_sm (and, via :class:`DeliverSm`, of deliver_sm: the layout is identical)."""

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        if len(self.short_message) > 254:
            raise PduError("short_message longer than 254 octets; use message_payload")
        return b"".join(
            (
                _cstr(self.service_type),
                _ADDR.pack(self.source_addr_ton, self.source_addr_npi),
                _cstr(self.source_addr),
                _ADDR.pack(self.dest_addr_ton, self.dest_addr_npi),
                _cstr(self.destination_addr),
                _SM_MID.pack(self.esm_class, self.protocol_id, self.priority_flag),
                _cstr(self.schedule_delivery_time),
                _cstr(self.validity_period),
                _SM_FLAGS.pack(
                    self.registered_delivery,
                    self.replace_if_present_flag,
                    self.data_coding,
                    self.sm_default_msg_id,
                    len(self.short_message),
                ),
                self.short_message,
                encode_tlvs(self.tlvs),
            )
        )

    @classmethod
    def decode(cls, buf: bytes, pos: int = HEADER_LEN) -> SubmitSm:
        n = len(buf)
        try:
            service_type, pos = read_cstring(buf, pos, 6)
            src_ton, src_npi = _ADDR.unpack_from(buf, pos)
            source_addr, pos = read_cstring(buf, pos + 2, 21)
            dst_ton, dst_npi = _ADDR.unpack_from(buf, pos)
            destination_addr, pos = read_cstring(buf, pos + 2, 21)
            esm_class, protocol_id, priority = _SM_MID.unpack_from(buf, pos)
            schedule, pos = read_cstring(buf, pos + 3, 17)
            validity, pos = read_cstring(buf, pos, 17)
            rd, replace, dcs, default_id, sm_length = _SM_FLAGS.unpack_from(buf, pos)
        except struct.error:
            raise PduError("short message body truncated", Status.ESME_RINVCMDLEN) from None
        pos += 5
        if pos + sm_length > n:
            raise PduError("short_message overruns the PDU", Status.ESME_RINVMSGLEN)
        short_message = bytes(buf[pos : pos + sm_length])
        tlvs = decode_tlvs(buf, pos + sm_length, n)
        return cls(
            service_type,
            src_ton,
            src_npi,
            source_addr,
            dst_ton,
            dst_npi,
            destination_addr,
            esm_class,
            protocol_id,
            priority,
            schedule,
            validity,
            rd,
            replace,
            dcs,
            default_id,
            short_message,
            tlvs,
        )


@dataclass(slots=True)
class DeliverSm(SubmitSm):
    """Body of deliver_sm (same layout as submit_sm)."""

    @property
    def is_receipt(self) -> bool:
        return bool(self.esm_class & 0x04)


Body: TypeAlias = Bind | BindResp | MessageIdResp | SubmitSm | bytes | None

_BODY_TYPES: dict[int, type[Bind] | type[BindResp] | type[MessageIdResp] | type[SubmitSm]] = {
    BIND_RECEIVER: Bind,
    BIND_TRANSMITTER: Bind,
    BIND_TRANSCEIVER: Bind,
    BIND_RECEIVER_RESP: BindResp,
    BIND_TRANSMITTER_RESP: BindResp,
    BIND_TRANSCEIVER_RESP: BindResp,
    SUBMIT_SM: SubmitSm,
    SUBMIT_SM_RESP: MessageIdResp,
    DELIVER_SM: DeliverSm,
    DELIVER_SM_RESP: MessageIdResp,
}
_EMPTY_BODY: frozenset[int] = frozenset(
    {UNBIND, UNBIND_RESP, ENQUIRE_LINK, ENQUIRE_LINK_RESP, GENERIC_NACK}
)


# --------------------------------------------------------------------------------------------
# PDU
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Pdu:
    """A whole PDU. ``body`` is a body object, ``None`` for header-only PDUs, or raw ``bytes``
    for command ids this codec does not model."""

    command_id: int
    command_status: int = 0
    sequence_number: int = 0
    body: Body = None

    @property
    def name(self) -> str:
        try:
            return CommandId(self.command_id).name.lower()
        except ValueError:
            return f"unknown_0x{self.command_id:08x}"

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    def encode(self) -> bytes:
        return encode_pdu(self)


def pack_pdu(command_id: int, sequence_number: int, body: bytes = b"", status: int = 0) -> bytes:
    """Frame an already-encoded body (fast path)."""
    return HEADER.pack(HEADER_LEN + len(body), command_id, status, sequence_number) + body


def encode_pdu(pdu: Pdu) -> bytes:
    body = pdu.body
    if body is None:
        raw = b""
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = body.encode()
    return pack_pdu(pdu.command_id, pdu.sequence_number, raw, pdu.command_status)


def decode_pdu(frame: bytes | bytearray | memoryview) -> Pdu:
    """Decode one complete frame (as produced by :class:`FrameSplitter`)."""
    if not isinstance(frame, bytes):
        frame = bytes(frame)
    n = len(frame)
    if n < HEADER_LEN:
        raise FrameError(f"PDU shorter than the header ({n} bytes)")
    length, command_id, status, seq = HEADER.unpack_from(frame)
    if length != n:
        raise FrameError(f"command_length {length} does not match frame size {n}")
    body_type = _BODY_TYPES.get(command_id)
    body: Body
    if body_type is not None:
        body = body_type.decode(frame, HEADER_LEN)
    elif command_id in _EMPTY_BODY:
        body = None
    else:
        body = frame[HEADER_LEN:]
    return Pdu(command_id, status, seq, body)
