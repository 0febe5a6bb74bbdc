"""A small, dependency-free SMPP 3.4 PDU codec.

Used by the SMSC simulator (server side) and by its benchmark client, so it knows both directions
of every PDU it supports:

* header: ``command_length``, ``command_id``, ``command_status``, ``sequence_number``;
* bodies: ``bind_transmitter`` / ``bind_receiver`` / ``bind_transceiver`` and their ``_resp``,
  ``unbind`` / ``unbind_resp``, ``submit_sm`` / ``submit_sm_resp``, ``deliver_sm`` /
  ``deliver_sm_resp``, ``enquire_link`` / ``enquire_link_resp``, ``generic_nack``;
* optional parameters (TLVs): all are parsed and kept as ``{tag: raw value bytes}``, unknown tags
  included, and re-encoded in insertion order.

Any other command id decodes into a :class:`Pdu` whose ``body`` is the raw body bytes, so callers
can answer it with ``generic_nack``.

C-Octet Strings are decoded as latin-1, which maps every byte to one code point, so decoding is
lossless and ``encode(decode(x)) == x`` for any well-formed PDU. ``short_message`` stays ``bytes``.

:class:`FrameSplitter` turns a TCP byte stream, chunked arbitrarily, into complete PDU frames.

Hot paths (the simulator's submit loop) use the module-level ``int`` constants and ``HEADER``
struct directly instead of building :class:`Pdu` objects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, TypeAlias

__all__ = [
    "HEADER",
    "HEADER_LEN",
    "MAX_PDU_LEN",
    "Bind",
    "BindResp",
    "Body",
    "CommandId",
    "DeliverSm",
    "FrameError",
    "FrameSplitter",
    "MessageIdResp",
    "MessageState",
    "Pdu",
    "PduError",
    "Status",
    "SubmitSm",
    "Tag",
    "decode_pdu",
    "decode_tlvs",
    "encode_pdu",
    "encode_tlvs",
    "pack_pdu",
    "read_cstring",
    "tlv_cstring",
    "tlv_int",
    "tlv_str",
]


# --------------------------------------------------------------------------------------------
# Constants: the one table of command ids, command statuses, TLV tags and message states.
# --------------------------------------------------------------------------------------------


class CommandId(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103

    @property
    def is_response(self) -> bool:
        return bool(self & RESPONSE_BIT)


class Status(IntEnum):
    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF


class Tag(IntEnum):
    """SMPP 3.4 optional parameter tags (the ones this project cares about, plus common ones)."""

    DEST_ADDR_SUBUNIT = 0x0005
    SOURCE_ADDR_SUBUNIT = 0x000D
    PAYLOAD_TYPE = 0x0019
    RECEIPTED_MESSAGE_ID = 0x001E
    USER_MESSAGE_REFERENCE = 0x0204
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427


class MessageState(IntEnum):
    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


RESPONSE_BIT: Final = 0x80000000
SMPP_VERSION_34: Final = 0x34

# Plain ints for hot paths (IntEnum attribute access and comparisons are measurably slower).
GENERIC_NACK: Final = 0x80000000
BIND_RECEIVER: Final = 0x00000001
BIND_RECEIVER_RESP: Final = 0x80000001
BIND_TRANSMITTER: Final = 0x00000002
BIND_TRANSMITTER_RESP: Final = 0x80000002
SUBMIT_SM: Final = 0x00000004
SUBMIT_SM_RESP: Final = 0x80000004
DELIVER_SM: Final = 0x00000005
DELIVER_SM_RESP: Final = 0x80000005
UNBIND: Final = 0x00000006
UNBIND_RESP: Final = 0x80000006
BIND_TRANSCEIVER: Final = 0x00000009
BIND_TRANSCEIVER_RESP: Final = 0x80000009
ENQUIRE_LINK: Final = 0x00000015
ENQUIRE_LINK_RESP: Final = 0x80000015

HEADER: Final = struct.Struct(">IIII")
HEADER_LEN: Final = 16
#: Frames longer than this are rejected by :class:`FrameSplitter` (a sane upper bound; the
#: largest legal 3.4 PDU with a 64 KiB message_payload TLV fits comfortably).
MAX_PDU_LEN: Final = 128 * 1024

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_TLV_HEAD = struct.Struct(">HH")
_BIND_TAIL = struct.Struct(">BBB")
_ADDR = struct.Struct(">BB")
_SM_MID = struct.Struct(">BBB")
_SM_FLAGS = struct.Struct(">BBBBB")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class PduError(ValueError):
    """A PDU (or a part of it) is malformed. ``status`` is the SMPP status to answer with."""

    def __init__(self, message: str, status: int = Status.ESME_RSYSERR) -> None:
        super().__init__(message)
        self.status = int(status)


class FrameError(PduError):
    """The byte stream cannot be framed (bad command_length); the connection must be dropped."""

    def __init__(self, message: str) -> None:
        super().__init__(message, Status.ESME_RINVCMDLEN)


# --------------------------------------------------------------------------------------------
# Primitive helpers
# --------------------------------------------------------------------------------------------


def read_cstring(buf: bytes, pos: int, max_len: int | None = None) -> tuple[str, int]:
    """Read a NUL-terminated C-Octet String starting at ``pos``.

    Returns ``(value, position after the NUL)``. ``max_len`` counts the terminating NUL, as in
    the SMPP specification tables (for example 16 for ``system_id``).
    """
    try:
        end = buf.index(b"\x00", pos)
    except ValueError:
        raise PduError(f"unterminated C-Octet String at offset {pos}") from None
    if max_len is not None and end - pos + 1 > max_len:
        raise PduError(f"C-Octet String at offset {pos} longer than {max_len - 1}")
    return buf[pos:end].decode("latin-1"), end + 1


def _cstr(value: str) -> bytes:
    if "\x00" in value:
        raise PduError("C-Octet String value contains NUL")
    return value.encode("latin-1") + b"\x00"


def decode_tlvs(buf: bytes, pos: int = 0, end: int | None = None) -> dict[int, bytes]:
    """Parse optional parameters from ``buf[pos:end]`` into ``{tag: value}``.

    Every tag is kept, known or not; a repeated tag keeps its last value.
    """
    if end is None:
        end = len(buf)
    tlvs: dict[int, bytes] = {}
    while pos < end:
        if end - pos < 4:
            raise PduError("truncated TLV header", Status.ESME_RINVOPTPARSTREAM)
        tag, length = _TLV_HEAD.unpack_from(buf, pos)
        pos += 4
        if pos + length > end:
            raise PduError(f"TLV 0x{tag:04x} value overruns the PDU", Status.ESME_RINVPARLEN)
        tlvs[tag] = bytes(buf[pos : pos + length])
        pos += length
    return tlvs


def encode_tlvs(tlvs: dict[int, bytes] | None) -> bytes:
    if not tlvs:
        return b""
    parts: list[bytes] = []
    for tag, value in tlvs.items():
        if len(value) > 0xFFFF:
            raise PduError(f"TLV 0x{tag:04x} value too long")
        parts.append(_TLV_HEAD.pack(tag, len(value)))
        parts.append(value)
    return b"".join(parts)


def tlv_cstring(value: str) -> bytes:
    """Encode a C-Octet String TLV value (including its terminating NUL)."""
    return _cstr(value)


def tlv_str(value: bytes) -> str:
    """Decode a C-Octet String TLV value; tolerates a missing terminator."""
    if value.endswith(b"\x00"):
        value = value[:-1]
    return value.decode("latin-1")


def tlv_int(value: bytes) -> int:
    """Decode a big-endian integer TLV value of any width."""
    return int.from_bytes(value, "big")


# --------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Stream framing
# --------------------------------------------------------------------------------------------


class FrameSplitter:
    """Split a byte stream, fed in arbitrary chunks, into complete PDU frames (``bytes``).

    ``feed()`` returns the frames completed by the chunk, in order; a partial frame is kept until
    the rest arrives. A ``command_length`` below 16 or above ``max_len`` raises
    :class:`FrameError` (the stream cannot be resynchronised; drop the connection).
    """

    __slots__ = ("_buf", "max_len")

    def __init__(self, max_len: int = MAX_PDU_LEN) -> None:
        self._buf = b""
        self.max_len = max_len

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        buf = self._buf + data if self._buf else bytes(data)
        n = len(buf)
        pos = 0
        frames: list[bytes] = []
        append = frames.append
        max_len = self.max_len
        unpack_from = _U32.unpack_from
        while n - pos >= 4:
            (length,) = unpack_from(buf, pos)
            if length < HEADER_LEN or length > max_len:
                self._buf = b""
                raise FrameError(f"invalid command_length {length}")
            end = pos + length
            if end > n:
                break
            append(buf[pos:end])
            pos = end
        self._buf = buf[pos:] if pos < n else b""
        return frames


_U32 = struct.Struct(">I")
