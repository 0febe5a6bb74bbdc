"""Single-object Avro encoding: round trips, strict decoding, plain-Avro readability, evolution."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest

from schemas.codec import HEADER_LEN, MARKER, DecodeError, codec
from schemas.models import (
    DeliveryStatus,
    MessageType,
    PartOutcome,
    SubmitOutcome,
    SubmitRequest,
    SubmitStatus,
)
from schemas.registry import contracts, history

NOW = datetime(2026, 11, 26, 12, 0, 0, 123000, tzinfo=UTC)


def _request(**changes: Any) -> SubmitRequest:
    fields: dict[str, Any] = {
        "message_id": "5f0c1d9e-1",
        "tenant_id": "acme",
        "source": "ACME",
        "destination": "+447700900123",
        "body": "Your code is 123456 — ünïcödé ✓",
        "message_type": MessageType.OTP,
        "submitted_at": NOW,
        "client_ref": "order-77",
    }
    fields.update(changes)
    return SubmitRequest(**fields)


def test_round_trip_keeps_every_field() -> None:
    request = _request(validity_s=600)
    assert SubmitRequest.from_avro(request.to_avro()) == request


def test_nested_records_round_trip() -> None:
    sent = SubmitOutcome(
        message_id="m", tenant_id="t", route_id="r", smsc_id="s", operator_id="o",
        country="GB", destination="+447700900123", part_index=0, part_count=1,
        outcome=SubmitStatus.ACCEPTED, smsc_message_id="123", command_status=0,
        status_name="ESME_ROK", attempts=1, latency_ms=1.5, submitted_at=NOW, sent_at=NOW,
        expires_at=NOW,
    )
    part = PartOutcome(sent=sent, status=DeliveryStatus.DELIVERED, done_at=NOW)
    assert PartOutcome.from_avro(part.to_avro()) == part


def test_header_is_marker_and_spec_fingerprint() -> None:
    data = _request().to_avro()
    assert data[:2] == MARKER == b"\xc3\x01"
    assert data[2:HEADER_LEN] == contracts()["SubmitRequest"].fingerprint


def test_fingerprint_matches_avro_spec_test_vector() -> None:
    # Avro's schema-tests: CRC-64-AVRO of '"null"' is 7195948357588979594 (as a signed long).
    raw = bytes.fromhex(fastavro.schema.fingerprint('"null"', "CRC-64-AVRO"))
    assert int.from_bytes(raw, "little", signed=True) == 7195948357588979594


def test_plain_avro_library_decodes_body_without_our_code() -> None:
    """An analyst with only the .avsc file and the Apache `avro` package can read our records."""
    data = _request().to_avro()
    schema_json = contracts()["SubmitRequest"].schema_json
    reader = avro.io.DatumReader(avro.schema.parse(json.dumps(schema_json)))
    record: Any = reader.read(avro.io.BinaryDecoder(io.BytesIO(data[HEADER_LEN:])))
    assert record["message_id"] == "5f0c1d9e-1"
    assert record["body"] == "Your code is 123456 — ünïcödé ✓"
    assert record["message_type"] == "OTP"


@pytest.mark.parametrize(
    ("data", "reason_code"),
    [
        (b"", "EMPTY_RECORD"),
        (None, "EMPTY_RECORD"),
        (b"\x00\x01garbage-bytes-here", "UNDECODABLE"),
        (b'{"message_id": "json is not accepted"}', "UNDECODABLE"),
        (MARKER + b"\x00" * 8 + b"\x02a", "SCHEMA_MISMATCH"),
    ],
)
def test_bad_input_is_a_decode_error_with_reason(data: bytes | None, reason_code: str) -> None:
    with pytest.raises(DecodeError) as caught:
        codec("SubmitRequest").decode(data)
    assert caught.value.reason_code == reason_code


def test_record_of_another_contract_is_a_schema_mismatch() -> None:
    other = codec("Rejection").encode(
        {"reason_code": "X", "reason": "y", "stage": "router", "source_topic": "t",
         "source_partition": 0, "source_offset": 1, "rejected_at": NOW}
    )
    with pytest.raises(DecodeError) as caught:
        codec("SubmitRequest").decode(other)
    assert caught.value.reason_code == "SCHEMA_MISMATCH"


def test_truncated_body_is_undecodable() -> None:
    data = _request().to_avro()
    with pytest.raises(DecodeError) as caught:
        codec("SubmitRequest").decode(data[:-5])
    assert caught.value.reason_code == "UNDECODABLE"


def test_trailing_bytes_are_undecodable() -> None:
    with pytest.raises(DecodeError):
        codec("SubmitRequest").decode(_request().to_avro() + b"\x00")


def _sample(schema: Any) -> Any:
    """A datum exercising every field of ``schema`` (non-null branch of unions)."""
    if isinstance(schema, list):
        return _sample(schema[-1])
    if isinstance(schema, str):
        return {"string": "s", "int": 1, "long": 2, "boolean": True, "double": 1.5,
                "float": 1.5, "bytes": b"b", "null": None}[schema]
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: _sample(f["type"]) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "array":
        return [_sample(schema["items"])]
    return _sample(kind)


@pytest.mark.parametrize("old", history(), ids=lambda h: f"{h.name}.v{h.version}")
def test_current_schema_reads_every_released_version(old: Any) -> None:
    """Backward compatibility: records written with a released schema stay readable."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, old.parsed, _sample(old.parsed))
    current = contracts()[old.name].parsed
    buffer.seek(0)
    fastavro.schemaless_reader(buffer, old.parsed, current)  # raises if incompatible
    data = MARKER + old.fingerprint + buffer.getvalue()
    codec(old.name).decode(data)


def test_every_contract_has_a_released_version() -> None:
    assert {h.name for h in history()} == set(contracts())


@pytest.mark.parametrize("name", sorted(contracts()))
def test_current_version_is_released(name: str) -> None:
    """Changing a contract means writing its next version to history/ (which the
    compatibility test above then checks); records in the wild carry that fingerprint."""
    released = {h.fingerprint for h in history() if h.name == name}
    assert contracts()[name].fingerprint in released, (
        f"{name} changed: add schemas/avro/history/{name}.v<N+1>.json"
    )


# ------------------------------------------------------------------ v2: ACCEPTED, receipt_requested


def _read(body: bytes, writer: Any, reader: Any = None) -> dict[str, Any]:
    record = fastavro.schemaless_reader(io.BytesIO(body), writer, reader)
    assert isinstance(record, dict)
    return record


def _released(name: str, version: int) -> Any:
    return next(h for h in history() if h.name == name and h.version == version)


def _report_v2(status: str) -> bytes:
    """A DeliveryReport body written with the released v2 schema."""
    record = {
        "message_id": "m", "tenant_id": "t", "client_ref": None, "route_id": "r",
        "smsc_id": "s", "operator_id": "o", "country": "GB", "destination": "+447700900123",
        "parts": 1, "status": status, "error_code": None, "reason": None,
        "smsc_message_ids": ["17"], "submitted_at": NOW, "sent_at": NOW, "done_at": NOW,
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, _released("DeliveryReport", 2).parsed, record)
    return buffer.getvalue()


def test_delivery_status_symbols_are_only_appended() -> None:
    """Enum symbols travel as their index: v1's symbols keep their positions in v2."""
    def symbols(parsed: Any) -> list[str]:
        field = next(f for f in parsed["fields"] if f["name"] == "status")
        return list(field["type"]["symbols"])

    v1, v2 = (symbols(_released("DeliveryReport", v).parsed) for v in (1, 2))
    assert v2[: len(v1)] == v1
    assert v2[len(v1):] == ["ACCEPTED"]
    assert [s.value for s in DeliveryStatus] == v2


def test_v1_submit_outcome_reads_as_receipt_requested() -> None:
    old = _released("SubmitOutcome", 1)
    record = _sample(old.parsed)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, old.parsed, record)
    decoded = SubmitOutcome.from_avro(MARKER + old.fingerprint + buffer.getvalue())
    assert decoded.receipt_requested is True


def test_v1_part_outcome_and_report_still_decode() -> None:
    encoded = {}
    for name in ("PartOutcome", "DeliveryReport"):
        old = _released(name, 1)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, old.parsed, _sample(old.parsed))
        encoded[name] = MARKER + old.fingerprint + buffer.getvalue()
        assert codec(name).decode(encoded[name])["status"] == "DELIVERED"
    assert PartOutcome.from_avro(encoded["PartOutcome"]).sent.receipt_requested is True


def test_receipt_requested_round_trips() -> None:
    sent = SubmitOutcome(
        message_id="m", tenant_id="t", route_id="r", smsc_id="s", operator_id="o",
        country="GB", destination="+447700900123", part_index=0, part_count=1,
        outcome=SubmitStatus.ACCEPTED, smsc_message_id="123", command_status=0,
        status_name="ESME_ROK", attempts=1, latency_ms=1.5, submitted_at=NOW, sent_at=NOW,
        expires_at=NOW, receipt_requested=False,
    )
    part = PartOutcome(sent=sent, status=DeliveryStatus.ACCEPTED, done_at=NOW)
    assert PartOutcome.from_avro(part.to_avro()) == part
    assert SubmitOutcome.from_avro(sent.to_avro()).receipt_requested is False


def test_old_reader_meets_accepted() -> None:
    """What a reader holding only the v1 schema does with a v2 report (docs/analysts.md).

    v1's enum has no default, so the new symbol cannot be read with v1; every other status can.
    """
    v1, v2 = _released("DeliveryReport", 1), _released("DeliveryReport", 2)
    accepted, delivered = _report_v2("ACCEPTED"), _report_v2("DELIVERED")
    # Avro schema resolution (writer v2 -> reader v1): ACCEPTED is an error...
    with pytest.raises(fastavro.read.SchemaResolutionError):
        fastavro.schemaless_reader(io.BytesIO(accepted), v2.parsed, v1.parsed)
    # ...older statuses resolve.
    assert _read(delivered, v2.parsed, v1.parsed)["status"] == "DELIVERED"
    # Decoding v2 bytes with the v1 schema alone (ignoring the fingerprint): the layout is
    # the same, older statuses read right, ACCEPTED (index 5) is out of v1's range.
    assert _read(delivered, v1.parsed)["status"] == "DELIVERED"
    with pytest.raises(IndexError):
        fastavro.schemaless_reader(io.BytesIO(accepted), v1.parsed)
    # Apache avro (1.12) fails the same way.
    reader = avro.io.DatumReader(avro.schema.parse(json.dumps(v1.parsed)))
    with pytest.raises(avro.errors.SchemaResolutionException):
        reader.read(avro.io.BinaryDecoder(io.BytesIO(accepted)))
    # An old smsflow process does not know the v2 fingerprint at all: every v2 record, whatever
    # its status, is a SCHEMA_MISMATCH there (upgrade readers before writers).
    assert v1.fingerprint != v2.fingerprint


def test_new_reader_reads_a_later_unknown_status_as_the_enum_default() -> None:
    """The reason for v2's enum default: a v3 symbol reads as ACCEPTED with the v2 schema."""
    v2 = _released("DeliveryReport", 2)
    v3_json = json.loads(json.dumps(v2.parsed))
    status = next(f for f in v3_json["fields"] if f["name"] == "status")
    status["type"]["symbols"].append("BLOCKED")
    v3 = fastavro.parse_schema(v3_json, _force=True)
    record = _read(_report_v2("DELIVERED"), v2.parsed)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, v3, {**record, "status": "BLOCKED"})
    assert _read(buffer.getvalue(), v3, v2.parsed)["status"] == "ACCEPTED"


def test_a_timestamp_out_of_range_is_a_decode_error_not_a_crash() -> None:
    """Found by tests/fuzz: fastavro raised OverflowError for a corrupt timestamp-millis, which
    no agent caught (a poison record crash-looped the worker)."""
    import copy
    import io as _io
    import json as _json

    import fastavro

    from schemas.codec import DecodeError, codec
    from schemas.registry import contracts
    from tests.unit.schemas.test_wire import model_sample

    name = "DeliveryReport"
    schema = copy.deepcopy(contracts()[name].schema_json)
    text = _json.dumps(schema).replace('"logicalType": "timestamp-millis"', '"x": "y"')
    plain = fastavro.parse_schema(_json.loads(text), _force=True)
    record = model_sample(name).model_dump(mode="python")
    for field in _json.loads(text)["fields"]:
        if "x" in _json.dumps(field["type"]):
            record[field["name"]] = 2**62  # far past year 9999
    body = _io.BytesIO()
    fastavro.schemaless_writer(body, plain, record)
    corrupt = codec(name).header + body.getvalue()
    with pytest.raises(DecodeError) as refused:
        codec(name).decode(corrupt)
    assert refused.value.reason_code == "UNDECODABLE"
