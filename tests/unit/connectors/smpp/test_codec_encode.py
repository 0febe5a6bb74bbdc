"""The hand-written submit_sm / response encoders write the same bytes as smpplib."""

from __future__ import annotations

from typing import Any

import pytest
from smpplib import smpp

from connectors.smpp.codec import (
    DATA_SM_RESP,
    DELIVER_SM_RESP,
    ENQUIRE_LINK_RESP,
    GENERIC_NACK,
    UNBIND_RESP,
    SubmitSmFields,
    encode_submit_sm,
    pack_pdu,
    set_sequence,
)


class _Seq:
    sequence = 0

    def next_sequence(self) -> int:
        return 1


def _smpplib(command: str, sequence: int, **fields: Any) -> bytes:
    pdu = smpp.make_pdu(command, client=_Seq(), **fields)
    pdu.sequence = sequence
    generated: bytes = pdu.generate()
    return generated


@pytest.mark.parametrize(
    ("source", "ton", "npi", "esm_class", "data_coding", "payload"),
    [
        ("ACME", 5, 0, 0, 0, b"hello"),
        ("447700900123", 1, 1, 0x40, 8, b"\x05\x00\x03\x2a\x02\x01" + "é".encode("utf-16-be")),
        ("12345", 3, 0, 0, 0, b""),
        ("SMSFLOW", 5, 0, 0, 0, bytes(range(254))),
    ],
)
def test_submit_sm_matches_smpplib(
    source: str, ton: int, npi: int, esm_class: int, data_coding: int, payload: bytes
) -> None:
    fields = SubmitSmFields(
        service_type="", source_addr_ton=ton, source_addr_npi=npi, source_addr=source,
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="4915112345678",
        esm_class=esm_class, protocol_id=0, priority_flag=0, schedule_delivery_time="",
        validity_period="", registered_delivery=1, data_coding=data_coding,
    )
    expected = _smpplib(
        "submit_sm", 0x7FFFFFFF, service_type="", source_addr_ton=ton, source_addr_npi=npi,
        source_addr=source, dest_addr_ton=1, dest_addr_npi=1, destination_addr="4915112345678",
        esm_class=esm_class, protocol_id=0, priority_flag=0, schedule_delivery_time="",
        validity_period="", registered_delivery=1, replace_if_present_flag=0,
        data_coding=data_coding, sm_default_msg_id=0, short_message=payload,
    )
    pdu = encode_submit_sm(fields, payload)
    set_sequence(pdu, 0x7FFFFFFF)
    assert bytes(pdu) == expected


def test_submit_sm_refuses_an_over_long_part() -> None:
    fields = SubmitSmFields("", 5, 0, "A", 1, 1, "49151", 0, 0, 0, "", "", 1, 0)
    with pytest.raises(ValueError, match="254"):
        encode_submit_sm(fields, bytes(255))


@pytest.mark.parametrize(
    ("command", "command_id", "body"),
    [
        ("deliver_sm_resp", DELIVER_SM_RESP, b"\0"),
        ("data_sm_resp", DATA_SM_RESP, b"\0"),
        ("enquire_link_resp", ENQUIRE_LINK_RESP, b""),
        ("generic_nack", GENERIC_NACK, b""),
        ("unbind_resp", UNBIND_RESP, b""),
    ],
)
@pytest.mark.parametrize("status", [0, 0x64])
def test_responses_match_smpplib(command: str, command_id: int, body: bytes, status: int) -> None:
    assert pack_pdu(command_id, 4242, body, status) == _smpplib(
        command, 4242, status=status
    )
