"""What the SMPP client reads and writes on its hot path, without building PDU objects.

smpplib builds the PDUs the client sends rarely (binds, unbind), but its reader is not used:
``Client.read_pdu`` loses the stream position when a socket timeout hits in the middle of a PDU,
and its parser maps TLVs to named attributes (skipping unknown ones and trusting its own idea of
each TLV's size). The client needs the raw ``tag -> value`` TLV map of every ``deliver_sm``
(first occurrence wins), so the few bodies it reads are decoded here, from the shared
primitives; the bodies it writes per message (``submit_sm``) are encoded here too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from connectors.smpp.codec.constants import HEADER, SUBMIT_SM
from connectors.smpp.codec.primitives import PduError, decode_tlvs, read_cstring

_BYTE: Final = struct.Struct(">B")
_SEQUENCE: Final = struct.Struct(">I")


def _octet(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise PduError("PDU body too short")
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
    service_type, pos = read_cstring(body, 0)
    src_ton, pos = _octet(body, pos)
    src_npi, pos = _octet(body, pos)
    src, pos = read_cstring(body, pos)
    dst_ton, pos = _octet(body, pos)
    dst_npi, pos = _octet(body, pos)
    dst, pos = read_cstring(body, pos)
    return service_type, src_ton, src_npi, src, dst_ton, dst_npi, dst, pos


def parse_deliver_sm(body: bytes) -> DeliverBody:
    """Decode a ``deliver_sm`` body (the PDU without its 16-byte header)."""
    service_type, src_ton, src_npi, src, dst_ton, dst_npi, dst, pos = _addresses(body)
    esm_class, pos = _octet(body, pos)
    _protocol_id, pos = _octet(body, pos)
    _priority, pos = _octet(body, pos)
    _schedule, pos = read_cstring(body, pos)
    _validity, pos = read_cstring(body, pos)
    registered_delivery, pos = _octet(body, pos)
    _replace, pos = _octet(body, pos)
    data_coding, pos = _octet(body, pos)
    _default_msg_id, pos = _octet(body, pos)
    sm_length, pos = _octet(body, pos)
    if pos + sm_length > len(body):
        raise PduError("short_message longer than the PDU")
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
        tlvs=decode_tlvs(body, pos + sm_length, first_wins=True),
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
        tlvs=decode_tlvs(body, pos, first_wins=True),
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
# tests/unit/connectors/smpp/test_codec_encode.py checks the bytes against smpplib's.


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
        return encode_submit_sm_prefix(
            self.service_type, self.source_addr_ton, self.source_addr_npi, self.source_addr,
            self.dest_addr_ton, self.dest_addr_npi, self.destination_addr, self.esm_class,
            self.protocol_id, self.priority_flag, self.schedule_delivery_time,
            self.validity_period, self.registered_delivery, self.data_coding,
        )


def encode_submit_sm_prefix(
    service_type: str, source_addr_ton: int, source_addr_npi: int, source_addr: str,
    dest_addr_ton: int, dest_addr_npi: int, destination_addr: str, esm_class: int,
    protocol_id: int, priority_flag: int, schedule_delivery_time: str, validity_period: str,
    registered_delivery: int, data_coding: int,
) -> bytes:
    """:meth:`SubmitSmFields.encode_prefix` from the fields themselves: the sender's hot path
    builds no dataclass per message (fields validated by the caller)."""
    return b"".join((
        service_type.encode("latin-1"), b"\0",
        bytes((source_addr_ton, source_addr_npi)),
        source_addr.encode("latin-1"), b"\0",
        bytes((dest_addr_ton, dest_addr_npi)),
        destination_addr.encode("latin-1"), b"\0",
        bytes((esm_class, protocol_id, priority_flag)),
        schedule_delivery_time.encode("latin-1"), b"\0",
        validity_period.encode("latin-1"), b"\0",
        # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
        bytes((registered_delivery, 0, data_coding, 0)),
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
