"""SMPP 3.4 PDU codec, as the SMSC simulator uses it (connectors.smpp.codec)."""

from __future__ import annotations

import random
import struct

import pytest
import smpplib.smpp

from connectors.smpp import codec as P


def _submit(**kw: object) -> P.SubmitSm:
    fields: dict[str, object] = {
        "service_type": "CMT",
        "source_addr_ton": 5,
        "source_addr_npi": 0,
        "source_addr": "SMSFLOW",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": "447700900123",
        "esm_class": 0x40,
        "protocol_id": 0,
        "priority_flag": 1,
        "schedule_delivery_time": "",
        "validity_period": "000001000000000R",
        "registered_delivery": 1,
        "data_coding": 8,
        "short_message": "héllo".encode("utf-16-be"),
        "tlvs": {P.Tag.USER_MESSAGE_REFERENCE: b"\x00\x07", 0x1400: b"vendor"},
    }
    fields.update(kw)
    return P.SubmitSm(**fields)  # type: ignore[arg-type]


SAMPLE_PDUS = [
    P.Pdu(P.CommandId.BIND_TRANSMITTER, 0, 1, P.Bind("smsc-uk", "secret", "SMPP", 0x34, 1, 1,
                                                      "^44")),
    P.Pdu(P.CommandId.BIND_RECEIVER, 0, 2, P.Bind("smsc-de", "pw")),
    P.Pdu(P.CommandId.BIND_TRANSCEIVER, 0, 3, P.Bind("smsc-us", "")),
    P.Pdu(P.CommandId.BIND_TRANSCEIVER_RESP, 0, 3,
          P.BindResp("SMSCSIM", {P.Tag.SC_INTERFACE_VERSION: b"\x34"})),
    P.Pdu(P.CommandId.BIND_TRANSMITTER_RESP, 0, 1, P.BindResp("SMSCSIM")),
    P.Pdu(P.CommandId.BIND_RECEIVER_RESP, 0, 2, P.BindResp("X")),
    P.Pdu(P.CommandId.UNBIND, 0, 4),
    P.Pdu(P.CommandId.UNBIND_RESP, 0, 4),
    P.Pdu(P.CommandId.SUBMIT_SM, 0, 5, _submit()),
    P.Pdu(P.CommandId.SUBMIT_SM_RESP, 0, 5, P.MessageIdResp("5f3a9c")),
    P.Pdu(P.CommandId.DELIVER_SM, 0, 6, P.DeliverSm(esm_class=4, short_message=b"id:1 stat:X",
                                                    tlvs={P.Tag.MESSAGE_STATE: b"\x02"})),
    P.Pdu(P.CommandId.DELIVER_SM_RESP, 0, 6, P.MessageIdResp("")),
    P.Pdu(P.CommandId.ENQUIRE_LINK, 0, 0x7FFFFFFF),
    P.Pdu(P.CommandId.ENQUIRE_LINK_RESP, 0, 0x7FFFFFFF),
    P.Pdu(P.CommandId.GENERIC_NACK, P.Status.ESME_RINVCMDID, 9),
]


# ---- header and round trips ---------------------------------------------------------------


@pytest.mark.parametrize("pdu", SAMPLE_PDUS, ids=lambda p: p.name)
def test_round_trip(pdu: P.Pdu) -> None:
    raw = pdu.encode()
    length, command_id, status, seq = struct.unpack(">IIII", raw[:16])
    assert length == len(raw)
    assert (command_id, status, seq) == (pdu.command_id, pdu.command_status,
                                         pdu.sequence_number)
    decoded = P.decode_pdu(raw)
    assert decoded == pdu
    assert type(decoded.body) is type(pdu.body)
    assert decoded.encode() == raw


def test_header_only_pdu_is_16_bytes() -> None:
    raw = P.pack_pdu(P.ENQUIRE_LINK, 77)
    assert raw == b"\x00\x00\x00\x10\x00\x00\x00\x15\x00\x00\x00\x00\x00\x00\x00\x4d"


def test_submit_sm_wire_layout() -> None:
    body = P.SubmitSm(source_addr="A", destination_addr="B", registered_delivery=1,
                      short_message=b"hi").encode()
    assert body == (
        b"\x00"  # service_type
        b"\x00\x00A\x00"  # source ton/npi/addr
        b"\x00\x00B\x00"  # dest ton/npi/addr
        b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        b"\x00\x00"  # schedule_delivery_time, validity_period
        b"\x01\x00\x00\x00"  # registered_delivery, replace_if_present, data_coding, default id
        b"\x02hi"  # sm_length, short_message
    )


def test_error_responses_without_body_decode() -> None:
    raw = P.pack_pdu(P.SUBMIT_SM_RESP, 3, status=P.Status.ESME_RTHROTTLED)
    pdu = P.decode_pdu(raw)
    assert pdu.command_status == 0x58
    assert pdu.body == P.MessageIdResp("")
    bind = P.decode_pdu(P.pack_pdu(P.BIND_TRANSCEIVER_RESP, 1, status=P.Status.ESME_RINVPASWD))
    assert bind.body == P.BindResp("")


def test_unknown_command_keeps_raw_body() -> None:
    raw = P.pack_pdu(0x00000103, 5, b"\x01\x02\x03")
    pdu = P.decode_pdu(raw)
    assert pdu.body == b"\x01\x02\x03"
    assert pdu.name == "data_sm"
    assert P.decode_pdu(P.pack_pdu(0x0000ABCD, 1)).name == "unknown_0x0000abcd"
    assert pdu.encode() == raw


def test_response_bit() -> None:
    assert P.CommandId.SUBMIT_SM_RESP.is_response
    assert not P.CommandId.SUBMIT_SM.is_response
    assert P.Pdu(P.GENERIC_NACK).is_response


def test_decode_rejects_length_mismatch_and_short_frames() -> None:
    raw = P.pack_pdu(P.ENQUIRE_LINK, 1)
    with pytest.raises(P.FrameError):
        P.decode_pdu(raw + b"\x00")
    with pytest.raises(P.FrameError):
        P.decode_pdu(raw[:12])


def test_decode_accepts_memoryview_and_bytearray() -> None:
    raw = SAMPLE_PDUS[8].encode()
    assert P.decode_pdu(memoryview(raw)) == SAMPLE_PDUS[8]
    assert P.decode_pdu(bytearray(raw)) == SAMPLE_PDUS[8]


# ---- interoperability with smpplib --------------------------------------------------------


class _SeqClient:
    sequence = 0

    def next_sequence(self) -> int:
        return 1


def test_decodes_smpplib_submit_sm() -> None:
    generated = smpplib.smpp.make_pdu(
        "submit_sm",
        client=_SeqClient(),
        source_addr_ton=5,
        source_addr="SMSFLOW",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="447700900123",
        short_message=b"hello",
        registered_delivery=1,
    )
    generated.sequence = 12
    pdu = P.decode_pdu(generated.generate())
    assert pdu.command_id == P.SUBMIT_SM
    assert pdu.sequence_number == 12
    body = pdu.body
    assert isinstance(body, P.SubmitSm)
    assert (body.source_addr, body.destination_addr) == ("SMSFLOW", "447700900123")
    assert (body.source_addr_ton, body.dest_addr_ton, body.dest_addr_npi) == (5, 1, 1)
    assert body.registered_delivery == 1
    assert body.short_message == b"hello"


def test_smpplib_parses_our_receipt() -> None:
    pdu = P.Pdu(P.CommandId.DELIVER_SM, 0, 8, P.DeliverSm(
        source_addr="447700900123",
        destination_addr="SMSFLOW",
        esm_class=4,
        short_message=b"id:abc sub:001 dlvrd:001 stat:DELIVRD err:000 text:",
        tlvs={
            P.Tag.RECEIPTED_MESSAGE_ID: P.tlv_cstring("abc"),
            P.Tag.MESSAGE_STATE: b"\x02",
            P.Tag.NETWORK_ERROR_CODE: b"\x03\x00\x00",
        },
    ))
    parsed = smpplib.smpp.parse_pdu(
        pdu.encode(), client=_SeqClient(), allow_unknown_opt_params=True
    )
    assert parsed.command == "deliver_sm"
    assert parsed.receipted_message_id == b"abc"
    assert parsed.message_state == 2
    assert parsed.network_error_code == b"\x03\x00\x00"
    assert parsed.short_message.startswith(b"id:abc")


# ---- C-Octet Strings ----------------------------------------------------------------------


def test_cstring_empty_and_offsets() -> None:
    assert P.read_cstring(b"\x00", 0) == ("", 1)
    assert P.read_cstring(b"ab\x00cd\x00", 0) == ("ab", 3)
    assert P.read_cstring(b"ab\x00cd\x00", 3) == ("cd", 6)


def test_cstring_missing_terminator() -> None:
    with pytest.raises(P.PduError, match="unterminated"):
        P.read_cstring(b"abc", 0)
    with pytest.raises(P.PduError):
        P.read_cstring(b"", 0)


def test_cstring_max_length_counts_the_nul() -> None:
    assert P.read_cstring(b"abc\x00", 0, max_len=4) == ("abc", 4)
    with pytest.raises(P.PduError, match="longer than 3"):
        P.read_cstring(b"abcd\x00", 0, max_len=4)


def test_cstring_latin1_is_lossless() -> None:
    raw = bytes(range(1, 256))
    value, end = P.read_cstring(raw + b"\x00", 0)
    assert end == 256
    assert value.encode("latin-1") == raw
    mid = raw[-60:].decode("latin-1")
    pdu = P.Pdu(P.CommandId.SUBMIT_SM_RESP, 0, 1, P.MessageIdResp(mid))
    assert P.decode_pdu(pdu.encode()).body == P.MessageIdResp(mid)


def test_cstring_with_embedded_nul_cannot_be_encoded() -> None:
    with pytest.raises(P.PduError, match="NUL"):
        P.Bind("a\x00b", "pw").encode()


def test_bind_field_too_long_is_rejected() -> None:
    raw = P.Pdu(P.CommandId.BIND_TRANSMITTER, 0, 1, P.Bind("x" * 16, "pw")).encode()
    with pytest.raises(P.PduError):
        P.decode_pdu(raw)


def test_truncated_bodies_are_rejected() -> None:
    raw = P.Pdu(P.CommandId.SUBMIT_SM, 0, 1, _submit(tlvs={})).encode()
    for cut in range(17, len(raw) - 1):
        truncated = raw[:cut]
        framed = struct.pack(">I", len(truncated)) + truncated[4:]
        with pytest.raises(P.PduError):
            P.decode_pdu(framed)


def test_short_message_overrun_is_rejected() -> None:
    body = bytearray(P.SubmitSm(short_message=b"abc").encode())
    body[-4] = 200  # sm_length larger than what follows
    with pytest.raises(P.PduError, match="overruns"):
        P.decode_pdu(P.pack_pdu(P.SUBMIT_SM, 1, bytes(body)))


def test_short_message_longer_than_254_cannot_be_encoded() -> None:
    with pytest.raises(P.PduError, match="message_payload"):
        P.SubmitSm(short_message=b"x" * 255).encode()


# ---- TLVs ---------------------------------------------------------------------------------


def test_tlvs_parse_known_and_unknown() -> None:
    raw = (
        b"\x00\x1e\x00\x04abc\x00"  # receipted_message_id
        b"\x04\x27\x00\x01\x05"  # message_state
        b"\x04\x23\x00\x03\x03\x00\x2a"  # network_error_code
        b"\x14\x00\x00\x00"  # unknown vendor tag, zero length
        b"\xfe\xfe\x00\x02\xca\xfe"  # unknown tag with a value
    )
    tlvs = P.decode_tlvs(raw)
    assert tlvs == {
        0x001E: b"abc\x00",
        0x0427: b"\x05",
        0x0423: b"\x03\x00\x2a",
        0x1400: b"",
        0xFEFE: b"\xca\xfe",
    }
    assert P.tlv_str(tlvs[P.Tag.RECEIPTED_MESSAGE_ID]) == "abc"
    assert P.tlv_int(tlvs[P.Tag.MESSAGE_STATE]) == P.MessageState.UNDELIVERABLE
    assert P.tlv_int(tlvs[P.Tag.NETWORK_ERROR_CODE][1:]) == 42
    assert P.encode_tlvs(tlvs) == raw


def test_tlvs_in_a_submit_sm_are_kept() -> None:
    pdu = P.decode_pdu(SAMPLE_PDUS[8].encode())
    assert isinstance(pdu.body, P.SubmitSm)
    assert pdu.body.tlvs == {0x0204: b"\x00\x07", 0x1400: b"vendor"}


def test_tlv_str_tolerates_missing_terminator() -> None:
    assert P.tlv_str(b"abc") == "abc"
    assert P.tlv_str(b"") == ""


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"\x00\x1e\x00", P.Status.ESME_RINVOPTPARSTREAM),  # header cut short
        (b"\x00\x1e\x00\x05abc", P.Status.ESME_RINVPARLEN),  # value overruns
    ],
)
def test_malformed_tlvs(raw: bytes, status: int) -> None:
    with pytest.raises(P.PduError) as info:
        P.decode_tlvs(raw)
    assert info.value.status == status


def test_tlvs_respect_the_end_offset() -> None:
    raw = b"\x00\x05\x00\x01\x01" + b"garbage"
    assert P.decode_tlvs(raw, 0, 5) == {0x0005: b"\x01"}


# ---- frame splitting ----------------------------------------------------------------------


def _stream() -> tuple[bytes, list[bytes]]:
    frames = [p.encode() for p in SAMPLE_PDUS]
    return b"".join(frames), frames


def test_splitter_whole_stream_at_once() -> None:
    stream, frames = _stream()
    splitter = P.FrameSplitter()
    assert splitter.feed(stream) == frames
    assert splitter.buffered == 0


def test_splitter_byte_by_byte() -> None:
    stream, frames = _stream()
    splitter = P.FrameSplitter()
    out: list[bytes] = []
    for i in range(len(stream)):
        out.extend(splitter.feed(stream[i : i + 1]))
    assert out == frames
    assert splitter.buffered == 0


@pytest.mark.parametrize("seed", range(20))
def test_splitter_random_chunks(seed: int) -> None:
    stream, frames = _stream()
    rng = random.Random(seed)
    splitter = P.FrameSplitter()
    out: list[bytes] = []
    pos = 0
    while pos < len(stream):
        size = rng.randint(1, 64)
        out.extend(splitter.feed(memoryview(stream)[pos : pos + size]))
        pos += size
    assert out == frames


def test_splitter_every_two_way_split() -> None:
    stream, frames = _stream()
    for cut in range(len(stream) + 1):
        splitter = P.FrameSplitter()
        out = splitter.feed(stream[:cut]) + splitter.feed(stream[cut:])
        assert out == frames, cut


def test_splitter_keeps_partial_frame() -> None:
    raw = P.pack_pdu(P.ENQUIRE_LINK, 1)
    splitter = P.FrameSplitter()
    assert splitter.feed(raw + raw[:3]) == [raw]
    assert splitter.buffered == 3
    assert splitter.feed(b"") == []
    assert splitter.feed(raw[3:]) == [raw]


@pytest.mark.parametrize("length", [0, 15, P.MAX_PDU_LEN + 1])
def test_splitter_rejects_bad_command_length(length: int) -> None:
    splitter = P.FrameSplitter()
    with pytest.raises(P.FrameError) as info:
        splitter.feed(struct.pack(">I", length) + b"\x00" * 12)
    assert info.value.status == P.Status.ESME_RINVCMDLEN


def test_splitter_max_len_is_configurable() -> None:
    splitter = P.FrameSplitter(max_len=32)
    with pytest.raises(P.FrameError):
        splitter.feed(struct.pack(">I", 33))
