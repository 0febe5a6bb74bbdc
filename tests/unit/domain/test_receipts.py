from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsflow.domain import receipts
from smsflow.domain.receipts import (
    TAG_MESSAGE_PAYLOAD,
    TAG_MESSAGE_STATE,
    TAG_NETWORK_ERROR_CODE,
    TAG_RECEIPTED_MESSAGE_ID,
    DeliveryStatus,
    IdFormat,
    ReceiptError,
    ReceiptSource,
    ReceiptState,
    normalize_message_id,
    parse_receipt,
    parse_receipt_datetime,
)

STANDARD = (
    b"id:0000002587 sub:001 dlvrd:001 submit date:2401151230 done date:240115123145 "
    b"stat:DELIVRD err:000 text:Hello world id:999"
)


def test_standard_text_receipt() -> None:
    r = parse_receipt(STANDARD, {}, id_format=IdFormat.DEC)
    assert r.smsc_message_id == "2587"
    assert r.raw_message_id == "0000002587"
    assert r.state is ReceiptState.DELIVERED
    assert r.is_terminal
    assert r.terminal_status is DeliveryStatus.DELIVERED
    assert r.error_code == 0
    assert r.submitted_at == datetime(2024, 1, 15, 12, 30, tzinfo=UTC)
    assert r.done_at == datetime(2024, 1, 15, 12, 31, 45, tzinfo=UTC)
    assert r.source is ReceiptSource.TEXT
    assert r.raw_stat == "DELIVRD"
    assert (r.submitted_count, r.delivered_count) == (1, 1)
    assert r.text == "Hello world id:999"  # text: runs to the end, keys inside are not parsed


def test_case_insensitive_keys_and_tolerant_spacing() -> None:
    sm = (
        b"ID : 1A2b  SUB:1 DLVRD:1 Submit_Date:2401151230 "
        b"DONE DATE : 2401151231 Stat: undeliv ERR:12"
    )
    r = parse_receipt(sm, {}, id_format=IdFormat.HEX)
    assert r.smsc_message_id == str(0x1A2B)
    assert r.state is ReceiptState.UNDELIVERABLE
    assert r.terminal_status is DeliveryStatus.UNDELIVERABLE
    assert r.error_code == 12
    assert r.done_at == datetime(2024, 1, 15, 12, 31, tzinfo=UTC)
    assert r.text is None


def test_missing_fields_and_reordering() -> None:
    r = parse_receipt(b"stat:EXPIRED id:42", {}, id_format=IdFormat.DEC)
    assert r.smsc_message_id == "42"
    assert r.state is ReceiptState.EXPIRED
    assert r.error_code is None
    assert r.submitted_at is None and r.done_at is None
    assert r.submitted_count is None


@pytest.mark.parametrize(
    ("stat", "state", "terminal"),
    [
        ("DELIVRD", ReceiptState.DELIVERED, DeliveryStatus.DELIVERED),
        ("EXPIRED", ReceiptState.EXPIRED, DeliveryStatus.EXPIRED),
        ("DELETED", ReceiptState.DELETED, DeliveryStatus.FAILED),
        ("UNDELIV", ReceiptState.UNDELIVERABLE, DeliveryStatus.UNDELIVERABLE),
        ("ACCEPTD", ReceiptState.ACCEPTED, None),
        ("UNKNOWN", ReceiptState.UNKNOWN, DeliveryStatus.FAILED),
        ("REJECTD", ReceiptState.REJECTED, DeliveryStatus.REJECTED),
        ("ENROUTE", ReceiptState.ENROUTE, None),
        ("delivrd", ReceiptState.DELIVERED, DeliveryStatus.DELIVERED),
    ],
)
def test_stat_values(stat: str, state: ReceiptState, terminal: DeliveryStatus | None) -> None:
    r = parse_receipt(f"id:7 stat:{stat} err:000".encode(), {}, id_format=IdFormat.DEC)
    assert r.state is state
    assert r.terminal_status is terminal
    assert r.is_terminal is (terminal is not None)


def test_unknown_stat_maps_to_unknown_and_keeps_raw() -> None:
    r = parse_receipt(b"id:7 stat:WEIRDO err:000", {}, id_format=IdFormat.DEC)
    assert r.state is ReceiptState.UNKNOWN
    assert r.raw_stat == "WEIRDO"
    assert r.terminal_status is DeliveryStatus.FAILED


def test_tlv_only_receipt() -> None:
    tlvs = {
        TAG_RECEIPTED_MESSAGE_ID: b"0A1B\x00",
        TAG_MESSAGE_STATE: bytes([2]),
        TAG_NETWORK_ERROR_CODE: b"\x03\x00\x22",
    }
    r = parse_receipt(b"", tlvs, id_format=IdFormat.HEX)
    assert r.smsc_message_id == "2587"
    assert r.raw_message_id == "0A1B"
    assert r.state is ReceiptState.DELIVERED
    assert r.error_code == 0x22
    assert r.network_type == 3
    assert r.source is ReceiptSource.TLV


@pytest.mark.parametrize(
    ("value", "state"),
    [
        (1, ReceiptState.ENROUTE),
        (2, ReceiptState.DELIVERED),
        (3, ReceiptState.EXPIRED),
        (4, ReceiptState.DELETED),
        (5, ReceiptState.UNDELIVERABLE),
        (6, ReceiptState.ACCEPTED),
        (7, ReceiptState.UNKNOWN),
        (8, ReceiptState.REJECTED),
    ],
)
def test_message_state_tlv_values(value: int, state: ReceiptState) -> None:
    tlvs = {TAG_RECEIPTED_MESSAGE_ID: b"5", TAG_MESSAGE_STATE: bytes([value])}
    assert parse_receipt(b"", tlvs, id_format=IdFormat.DEC).state is state


def test_tlv_preferred_over_text_when_they_disagree() -> None:
    tlvs = {
        TAG_RECEIPTED_MESSAGE_ID: b"ff\x00",
        TAG_MESSAGE_STATE: bytes([5]),
        TAG_NETWORK_ERROR_CODE: b"\x03\x00\x07",
    }
    r = parse_receipt(STANDARD, tlvs, id_format=IdFormat.HEX)
    assert r.smsc_message_id == "255"  # TLV id, not the text's 2587
    assert r.state is ReceiptState.UNDELIVERABLE  # TLV state, not DELIVRD
    assert r.error_code == 7  # TLV error, not err:000
    assert r.raw_stat == "DELIVRD"  # text is still reported as read
    assert r.done_at == datetime(2024, 1, 15, 12, 31, 45, tzinfo=UTC)  # dates come from text
    assert r.source is ReceiptSource.TLV


def test_mixed_sources() -> None:
    r = parse_receipt(
        b"id:10 stat:DELIVRD", {TAG_MESSAGE_STATE: bytes([3])}, id_format=IdFormat.DEC
    )
    assert r.source is ReceiptSource.MIXED
    assert r.state is ReceiptState.EXPIRED


def test_malformed_state_tlv_falls_back_to_text() -> None:
    for bad in (b"", bytes([0]), bytes([9]), b"\x00\x00\x00\x00\x02"):
        r = parse_receipt(b"id:10 stat:REJECTD", {TAG_MESSAGE_STATE: bad}, id_format=IdFormat.DEC)
        assert r.state is ReceiptState.REJECTED


def test_malformed_state_tlv_without_text_is_an_error() -> None:
    with pytest.raises(ReceiptError) as err:
        parse_receipt(
            b"",
            {TAG_RECEIPTED_MESSAGE_ID: b"1", TAG_MESSAGE_STATE: bytes([42])},
            id_format=IdFormat.DEC,
        )
    assert err.value.reason == "RECEIPT_BAD_TLV"


def test_receipt_text_in_message_payload() -> None:
    r = parse_receipt(b"", {TAG_MESSAGE_PAYLOAD: b"id:77 stat:DELIVRD"}, id_format=IdFormat.DEC)
    assert r.smsc_message_id == "77"


def test_missing_id_is_an_error() -> None:
    with pytest.raises(ReceiptError) as err:
        parse_receipt(b"sub:001 dlvrd:001 stat:DELIVRD err:000", {}, id_format=IdFormat.DEC)
    assert err.value.reason == "RECEIPT_NO_ID"
    assert isinstance(err.value, ValueError)


def test_empty_tlv_id_and_no_text_id_is_an_error() -> None:
    with pytest.raises(ReceiptError) as err:
        parse_receipt(
            b"",
            {TAG_RECEIPTED_MESSAGE_ID: b"\x00", TAG_MESSAGE_STATE: b"\x02"},
            id_format=IdFormat.DEC,
        )
    assert err.value.reason == "RECEIPT_NO_ID"


def test_missing_state_is_an_error() -> None:
    with pytest.raises(ReceiptError) as err:
        parse_receipt(b"id:1 sub:001 dlvrd:001", {}, id_format=IdFormat.DEC)
    assert err.value.reason == "RECEIPT_NO_STATE"


@pytest.mark.parametrize("sm", [b"", b"hello there", b"\xff\xfe\x00garbage"])
def test_unparseable(sm: bytes) -> None:
    with pytest.raises(ReceiptError) as err:
        parse_receipt(sm, {}, id_format=IdFormat.DEC)
    assert err.value.reason == "RECEIPT_UNPARSEABLE"


def test_id_not_valid_in_declared_format() -> None:
    with pytest.raises(ReceiptError) as err:
        parse_receipt(b"id:12ab stat:DELIVRD", {}, id_format=IdFormat.DEC)
    assert err.value.reason == "RECEIPT_BAD_ID"


def test_msgid_key_is_not_id() -> None:
    with pytest.raises(ReceiptError) as err:
        parse_receipt(b"msgid:5 stat:DELIVRD", {}, id_format=IdFormat.DEC)
    assert err.value.reason == "RECEIPT_NO_ID"


def test_bad_dates_become_none() -> None:
    r = parse_receipt(
        b"id:1 submit date:2413451230 done date:24011 stat:DELIVRD", {}, id_format=IdFormat.DEC
    )
    assert r.submitted_at is None
    assert r.done_at is None


def test_parse_receipt_datetime() -> None:
    assert parse_receipt_datetime("9912312359") == datetime(2099, 12, 31, 23, 59, tzinfo=UTC)
    assert parse_receipt_datetime("240229010203") == datetime(2024, 2, 29, 1, 2, 3, tzinfo=UTC)
    assert parse_receipt_datetime("230229010203") is None  # not a leap year
    assert parse_receipt_datetime("24022901020") is None  # 11 digits
    assert parse_receipt_datetime("") is None
    assert parse_receipt_datetime(" 2612070600\t") == datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    assert parse_receipt_datetime("26120706000") is None  # 11 digits
    assert parse_receipt_datetime("2612070600000") is None  # 13 digits
    assert parse_receipt_datetime("٢٦١٢٠٧٠٦٠٠") is None  # digits, but not ASCII ones
    assert parse_receipt_datetime("+612070600") is None


# ---------------------------------------------------------------- id normalisation


def test_hex_resp_matches_decimal_receipt() -> None:
    # Kannel-style msg-id-type: submit_sm_resp in hex, receipt in decimal.
    assert normalize_message_id("0A1B", IdFormat.HEX) == normalize_message_id("2587", IdFormat.DEC)


@pytest.mark.parametrize(
    ("raw", "fmt", "expected"),
    [
        ("0a1b", IdFormat.HEX, "2587"),
        ("0A1B", IdFormat.HEX, "2587"),
        ("0x0A1B", IdFormat.HEX, "2587"),
        ("  000A1B\x00", IdFormat.HEX, "2587"),
        ("0002587", IdFormat.DEC, "2587"),
        ("0", IdFormat.DEC, "0"),
        ("000", IdFormat.HEX, "0"),
        ("ABC-def\x00", IdFormat.STR, "abc-def"),
        ("00ab", IdFormat.STR, "ab"),
        ("000", IdFormat.STR, "0"),
        ("123456789012345678901234567890", IdFormat.DEC, "123456789012345678901234567890"),
    ],
)
def test_normalize(raw: str, fmt: IdFormat, expected: str) -> None:
    assert normalize_message_id(raw, fmt) == expected


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        ("12g", IdFormat.HEX),
        ("-12", IdFormat.DEC),
        ("1_000", IdFormat.DEC),
        ("١٢", IdFormat.DEC),  # non-ASCII digits are not accepted
        ("+5", IdFormat.DEC),
        ("1 2", IdFormat.DEC),
    ],
)
def test_normalize_rejects(raw: str, fmt: IdFormat) -> None:
    with pytest.raises(ReceiptError) as err:
        normalize_message_id(raw, fmt)
    assert err.value.reason == "RECEIPT_BAD_ID"


def test_normalize_empty() -> None:
    with pytest.raises(ReceiptError) as err:
        normalize_message_id(" \x00 ", IdFormat.STR)
    assert err.value.reason == "RECEIPT_NO_ID"


@given(st.integers(min_value=0, max_value=2**128))
def test_hex_and_dec_forms_of_a_number_match(n: int) -> None:
    hex_id = f"{n:0{8}X}"
    assert normalize_message_id(hex_id, IdFormat.HEX) == normalize_message_id(str(n), IdFormat.DEC)
    assert normalize_message_id(hex_id.lower(), IdFormat.HEX) == str(n)


@given(
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from([0x1E, 0x423, 0x424, 0x427]), st.binary(max_size=8)),
)
def test_parse_never_raises_anything_but_receipt_error(sm: bytes, tlvs: dict[int, bytes]) -> None:
    try:
        parse_receipt(sm, tlvs, id_format=IdFormat.STR)
    except ReceiptError:
        pass


def _fields_by_reference(text: str) -> dict[str, str]:
    """The first, plainly correct splitter: every key's value runs to the next key."""
    import re

    from smsflow.domain.receipts import _KEY_RE

    fields: dict[str, str] = {}
    matches = list(_KEY_RE.finditer(text))
    for index, match in enumerate(matches):
        key = re.sub(r"[ _]", "", match.group(1).lower())
        if key == "text":
            fields.setdefault(key, text[match.end():].rstrip("\x00"))
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        fields.setdefault(key, text[match.end():end].strip(" \t\r\n\x00"))
    return fields


_RECEIPT_PIECES = st.sampled_from([
    "id:", "ID :", "sub:", "dlvrd:", "submit date:", "Submit_Date:", "submitdate:", "done date:",
    "DONE DATE:", "stat:", "err:", "text:", "msgid:", "xid:", " ", "\x00", "\t", "001", "abc",
    "DELIVRD", "2512052130",
])


@given(st.lists(_RECEIPT_PIECES, max_size=20).map("".join) | st.text(max_size=60))
def test_receipt_text_splits_as_the_reference_splitter(text: str) -> None:
    from smsflow.domain.receipts import _text_fields

    assert _text_fields(text) == _fields_by_reference(text)


_VALUE = st.text(alphabet=st.sampled_from("aZ09_-:. \t\x00é\u2003"), max_size=8)


@given(st.lists(_VALUE, min_size=7, max_size=7), st.none() | _VALUE,
       st.text(alphabet=st.sampled_from("\x00 "), max_size=3))
def test_the_standard_layout_short_cut_splits_as_the_general_parser(
    values: list[str], text: str | None, tail: str
) -> None:
    """``_text_fields`` reads the SMPP Appendix B layout with one match; whatever the values
    hold (colons, spaces, NULs, non-ASCII), it must give what the key-by-key split gives, or
    leave the text to that split."""
    keys = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err")
    receipt = " ".join(f"{key}:{value}" for key, value in zip(keys, values, strict=True))
    if text is not None:
        receipt += f" text:{text}"
    receipt += tail
    assert receipts._text_fields(receipt) == receipts._any_text_fields(receipt)


def test_a_standard_receipt_takes_the_short_cut() -> None:
    """The layout every simulator and most SMSCs write is matched at once (the fast path is
    not dead code)."""
    text = ("id:0A1B2C3D sub:001 dlvrd:001 submit date:2612070600 done date:2612070601 "
            "stat:DELIVRD err:000 text:hello: world\x00")
    assert receipts._STANDARD_RE.fullmatch(text) is not None
    assert receipts._text_fields(text)["text"] == "hello: world"
