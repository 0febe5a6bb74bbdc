"""The read-back's fast message ids (pipeline/reported_tail.py) against the full Avro decode."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from pipeline.part_batches import pack
from pipeline.part_value import PartEnd
from pipeline.reported_tail import _message_ids, message_id_of, part_message_id
from schemas.codec import DecodeError
from schemas.models import DeliveryReport, DeliveryStatus, PartOutcome, SubmitOutcome
from tests.unit.pipeline.test_part_value import submit_outcome

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


def test_a_parts_message_id_reads_like_the_full_decode() -> None:
    assert next(iter(PartOutcome.model_fields)) == "sent"
    assert next(iter(SubmitOutcome.model_fields)) == "message_id"
    for message_id in ("m-1", "é" * 70):
        part = PartEnd(status=DeliveryStatus.DELIVERED, error_code=None, reason=None,
                       done_at=T0).outcome(submit_outcome(message_id))
        value = part.to_avro()
        assert part_message_id(value) == message_id
        assert part_message_id(b"\x00" + struct.pack(">I", 7) + value[10:]) == message_id


def test_the_replayable_ids_of_a_record_are_its_key_or_its_batchs_parts() -> None:
    """Keyed per-part records (the older format) and keyless batches
    (pipeline/part_batches.py); an unreadable part is left out, not fatal."""
    values = [PartEnd(status=DeliveryStatus.DELIVERED, error_code=None, reason=None,
                      done_at=T0).outcome(submit_outcome(m)).to_avro() for m in ("a", "b")]

    class Record:
        def __init__(self, key: bytes | None, value: bytes | None) -> None:
            self._key, self._value = key, value

        def key(self) -> bytes | None:
            return self._key

        def value(self) -> bytes | None:
            return self._value

    assert _message_ids(Record(b"m-9", values[0])) == ["m-9"]  # type: ignore[arg-type]
    batch = pack([values[0], b"garbage", values[1]])
    assert _message_ids(Record(None, batch)) == ["a", "b"]  # type: ignore[arg-type]
    assert _message_ids(Record(None, batch[:-3])) == ["a"]  # type: ignore[arg-type]
    assert _message_ids(Record(None, None)) == []  # type: ignore[arg-type]
