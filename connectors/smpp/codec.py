"""Small, pure SMPP 3.4 wire helpers used by the client's reader thread.

smpplib builds every PDU we send, but its reader is not used on the hot path:
``Client.read_pdu`` loses the stream position when a socket timeout hits in
the middle of a PDU, and its parser maps TLVs to named attributes (skipping
unknown ones and trusting its own idea of each TLV's size).  The client needs
the raw ``tag -> value`` TLV map of every ``deliver_sm``, so framing and the
few bodies it reads are decoded here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BIND_RECEIVER_RESP",
    "BIND_TRANSCEIVER_RESP",
    "BIND_TRANSMITTER_RESP",
    "DATA_SM",
    "DATA_SM_RESP",
    "DELIVER_SM",
    "DELIVER_SM_RESP",
    "ENQUIRE_LINK",
    "ENQUIRE_LINK_RESP",
    "GENERIC_NACK",
    "HEADER",
    "MAX_PDU_LENGTH",
    "SUBMIT_SM",
    "SUBMIT_SM_RESP",
    "UNBIND",
    "UNBIND_RESP",
    "CodecError",
    "DeliverBody",
    "FrameBuffer",
    "SubmitSmFields",
    "encode_header_only",
    "encode_submit_sm",
    "encode_submit_sm_from_prefix",
    "parse_data_sm",
    "parse_deliver_sm",
    "parse_message_id",
    "parse_tlvs",
    "set_sequence",
]

HEADER: Final = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence

GENERIC_NACK: Final = 0x80000000
SUBMIT_SM: Final = 0x00000004
SUBMIT_SM_RESP: Final = 0x80000004
DELIVER_SM: Final = 0x00000005
DELIVER_SM_RESP: Final = 0x80000005
UNBIND: Final = 0x00000006
UNBIND_RESP: Final = 0x80000006
BIND_RECEIVER_RESP: Final = 0x80000001
BIND_TRANSMITTER_RESP: Final = 0x80000002
BIND_TRANSCEIVER_RESP: Final = 0x80000009
ENQUIRE_LINK: Final = 0x00000015
ENQUIRE_LINK_RESP: Final = 0x80000015
DATA_SM: Final = 0x00000103
DATA_SM_RESP: Final = 0x80000103

_BYTE: Final = struct.Struct(">B")
_SEQUENCE: Final = struct.Struct(">I")

#: Largest PDU accepted from the SMSC; anything bigger means a broken stream.
MAX_PDU_LENGTH: Final = 64 * 1024


class CodecError(ValueError):
    """Malformed PDU data."""


class FrameBuffer:
    """Reassembles complete PDUs from arbitrary chunks of a TCP stream."""

    __slots__ = ("_buf", "_max")

    def __init__(self, max_length: int = MAX_PDU_LENGTH) -> None:
        self._buf = bytearray()
        self._max = max_length

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every complete PDU (header included)."""
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < 16 or length > self._max:
                raise CodecError(f"invalid command_length {length}")
            if end - pos < length:
                break
            frames.append(bytes(buf[pos : pos + length]))
            pos += length
        if pos:
            del buf[:pos]
        return frames


def parse_tlvs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """``tag -> value`` for the TLVs in ``data[offset:]`` (first occurrence wins)."""
    tlvs: dict[int, bytes] = {}
    pos = offset
    end = len(data)
    while pos < end:
        if end - pos < 4:
            raise CodecError("truncated TLV header")
        tag = int.from_bytes(data[pos : pos + 2], "big")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 4
        if end - pos < length:
            raise CodecError(f"TLV 0x{tag:04X} longer than the PDU")
        tlvs.setdefault(tag, data[pos : pos + length])
        pos += length
    return tlvs


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\x00", pos)
    if end < 0:
        raise CodecError("unterminated C-string")
    return data[pos:end].decode("latin-1"), end + 1


def _octet(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise CodecError("PDU body too short")
    return data[pos], pos + 1


@dataclass(frozen=True, slots=True)
class DeliverBody:
    """The fields of a ``deliver_sm`` / ``data_sm`` body that the client reports."""

    service_type: str
    source_addr_ton: int
    source_addr_npi: int
    source_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str
    esm_class: int
    registered_delivery: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]


def _addresses(body: bytes) -> tuple[str, int, int, str, int, int, str, int]:
    service_type, pos = _cstring(body, 0)
    src_ton, pos = _octet(body, pos)
    src_npi, pos = _octet(body, pos)
    src, pos = _cstring(body, pos)
    dst_ton, pos = _octet(body, pos)
    dst_npi, pos = _octet(body, pos)
    dst, pos = _cstring(body, pos)
    return service_type, src_ton, src_npi, src, dst_ton, dst_npi, dst, pos


def parse_deliver_sm(body: bytes) -> DeliverBody:
    """Decode a ``deliver_sm`` body (the PDU without its 16-byte header)."""
    service_type, src_ton, src_npi, src, dst_ton, dst_npi, dst, pos = _addresses(body)
    esm_class, pos = _octet(body, pos)
    _protocol_id, pos = _octet(body, pos)
    _priority, pos = _octet(body, pos)
    _schedule, pos = _cstring(body, pos)
    _validity, pos = _cstring(body, pos)
    registered_delivery, pos = _octet(body, pos)
    _replace, pos = _octet(body, pos)
    data_coding, pos = _octet(body, pos)
    _default_msg_id, pos = _octet(body, pos)
    sm_length, pos = _octet(body, pos)
    if pos + sm_length > len(body):
        raise CodecError("short_message longer than the PDU")
    short_message = body[pos : pos + sm_length]
    return DeliverBody(
        service_type=service_type,
        source_addr_ton=src_ton,
        source_addr_npi=src_npi,
        source_addr=src,
        dest_addr_ton=dst_ton,
        dest_addr_npi=dst_npi,
        destination_addr=dst,
        esm_class=esm_class,
        registered_delivery=registered_delivery,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=parse_tlvs(body, pos + sm_length),
    )


def parse_data_sm(body: bytes) -> DeliverBody:
    """Decode a ``data_sm`` body; its payload, if any, stays in the TLVs (0x0424)."""
    service_type, src_ton, src_npi, src, dst_ton, dst_npi, dst, pos = _addresses(body)
    esm_class, pos = _octet(body, pos)
    registered_delivery, pos = _octet(body, pos)
    data_coding, pos = _octet(body, pos)
    return DeliverBody(
        service_type=service_type,
        source_addr_ton=src_ton,
        source_addr_npi=src_npi,
        source_addr=src,
        dest_addr_ton=dst_ton,
        dest_addr_npi=dst_npi,
        destination_addr=dst,
        esm_class=esm_class,
        registered_delivery=registered_delivery,
        data_coding=data_coding,
        short_message=b"",
        tlvs=parse_tlvs(body, pos),
    )


def parse_message_id(body: bytes) -> str | None:
    """``message_id`` of a ``submit_sm_resp`` body; ``None`` when absent or empty.

    Error responses usually have no body at all; a missing terminator is
    tolerated (some SMSCs omit it).
    """
    if not body:
        return None
    end = body.find(b"\x00")
    raw = body if end < 0 else body[:end]
    value = raw.decode("latin-1").strip()
    return value or None


# ------------------------------------------------------------------------------ encoding
# smpplib's ``make_pdu(...).generate()`` costs ~140 us per submit_sm (it walks its parameter
# tables for every PDU); the sender writes thousands per second, so the two PDUs it sends
# on the hot path (submit_sm and the header-only/empty-body responses) are encoded here.
# tests/unit/test_smpp_codec_encode.py checks the bytes against smpplib's.


@dataclass(frozen=True, slots=True)
class SubmitSmFields:
    """The submit_sm fields shared by every part of one message (validated by the caller)."""

    service_type: str
    source_addr_ton: int
    source_addr_npi: int
    source_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str
    esm_class: int
    protocol_id: int
    priority_flag: int
    schedule_delivery_time: str
    validity_period: str
    registered_delivery: int
    data_coding: int

    def encode_prefix(self) -> bytes:
        """The body up to ``sm_length`` (the same for every part of the message), so each
        part only appends its length and payload."""
        return b"".join((
            self.service_type.encode("latin-1"), b"\0",
            bytes((self.source_addr_ton, self.source_addr_npi)),
            self.source_addr.encode("latin-1"), b"\0",
            bytes((self.dest_addr_ton, self.dest_addr_npi)),
            self.destination_addr.encode("latin-1"), b"\0",
            bytes((self.esm_class, self.protocol_id, self.priority_flag)),
            self.schedule_delivery_time.encode("latin-1"), b"\0",
            self.validity_period.encode("latin-1"), b"\0",
            # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
            bytes((self.registered_delivery, 0, self.data_coding, 0)),
        ))


def encode_submit_sm(fields: SubmitSmFields, short_message: bytes, sequence: int = 0) -> bytearray:
    """One submit_sm PDU (header included); the sequence number can be set later with
    :func:`set_sequence`. ``short_message`` must be at most 254 octets (no TLVs are written)."""
    return encode_submit_sm_from_prefix(fields.encode_prefix(), short_message, sequence)


def encode_submit_sm_from_prefix(head: bytes, short_message: bytes, sequence: int = 0) -> bytearray:
    """:func:`encode_submit_sm` with the body prefix already encoded (shared by the parts)."""
    if len(short_message) > 254:
        raise ValueError(f"short_message of {len(short_message)} octets > 254")
    length = 16 + len(head) + 1 + len(short_message)
    pdu = bytearray(HEADER.pack(length, SUBMIT_SM, 0, sequence))
    pdu += head
    pdu += _BYTE.pack(len(short_message))
    pdu += short_message
    return pdu


def set_sequence(pdu: bytearray, sequence: int) -> None:
    """Overwrite the sequence_number of an encoded PDU in place."""
    _SEQUENCE.pack_into(pdu, 12, sequence)


def encode_header_only(command_id: int, sequence: int, status: int = 0, body: bytes = b"") -> bytes:
    """A PDU whose body is fixed: ``enquire_link(_resp)``, ``generic_nack``, ``unbind_resp``;
    ``deliver_sm_resp`` / ``data_sm_resp`` with ``body=b"\\0"`` (an empty message_id)."""
    return HEADER.pack(16 + len(body), command_id, status, sequence) + body
