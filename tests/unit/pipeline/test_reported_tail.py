"""The read-back's fast message id (pipeline/reported_tail.py) against the full Avro decode."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from pipeline.reported_tail import message_id_of
from schemas.codec import DecodeError
from schemas.models import DeliveryReport, DeliveryStatus

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _report(message_id: str) -> DeliveryReport:
    return DeliveryReport(
        message_id=message_id, tenant_id="acme-bank", route_id="uk-direct", smsc_id="smsc-uk",
        operator_id="uk-ee", country="GB", destination="+447700900123", parts=1,
        status=DeliveryStatus.DELIVERED, error_code=None, reason=None, smsc_message_ids=["a"],
        submitted_at=T0, sent_at=T0, done_at=T0,
    )


def test_message_id_is_the_schemas_first_field() -> None:
    # The fast read depends on it: a schema change that moves message_id fails here.
    assert next(iter(DeliveryReport.model_fields)) == "message_id"


@pytest.mark.parametrize("message_id", ["m-1", "0194b7c2-aaaa-7bbb-8ccc-0123456789ab",
                                        "é" * 70, ""])
def test_both_framings_read_like_the_full_decode(message_id: str) -> None:
    single_object = _report(message_id).to_avro()
    assert single_object[:2] == b"\xc3\x01"
    assert message_id_of(single_object) == message_id
    assert DeliveryReport.from_avro(single_object).message_id == message_id
    # Confluent's framing: 00, a 4-byte schema id, the same Avro body.
    confluent = b"\x00" + struct.pack(">I", 42) + single_object[10:]
    assert message_id_of(confluent) == message_id


def test_other_bytes_go_to_the_full_decode() -> None:
    with pytest.raises(DecodeError):
        message_id_of(b"not avro at all")
    with pytest.raises(DecodeError):
        message_id_of(b"\xc3\x01" + b"\x00" * 8 + b"\xff")  # truncated length: full decode
