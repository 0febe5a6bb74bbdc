"""The throttle's output record: the routed record with ``throttled_at`` written in, the same
bytes as decoding into a model, setting the field and encoding again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.agents.throttle import Waiting, throttled_value
from schemas.codec import codec
from schemas.models import RoutedMessage, SubmitRequest, TextEncoding

ROUTED_AT = datetime(2026, 12, 5, 21, 30, 15, 123_000, tzinfo=UTC)


def routed(**changes: object) -> RoutedMessage:
    request = SubmitRequest(
        message_id="m-1", tenant_id="acme", source="ACME", destination="+447700900123",
        body="Your code is 482913", submitted_at=ROUTED_AT,
    )
    fields: dict[str, object] = {
        "request": request, "destination": "+447700900123", "route_id": "uk-a",
        "smsc_id": "smsc-a", "operator_id": "vodafone-uk", "country": "GB",
        "encoding": TextEncoding.GSM7, "parts": 1, "routed_at": ROUTED_AT, **changes,
    }
    return RoutedMessage.model_validate(fields)


def waiting(value: bytes) -> Waiting:
    return Waiting(value, RoutedMessage.codec().decode(value))


@pytest.mark.parametrize("throttled_at", [
    ROUTED_AT + timedelta(milliseconds=40),
    datetime(2026, 12, 5, 21, 30, 15, 999_999, tzinfo=UTC),  # sub-millisecond: floored
    datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC),  # before the epoch
    datetime(2300, 1, 1, tzinfo=UTC),  # a long varint
])
def test_a_record_without_throttled_at_gets_it_written_in(throttled_at: datetime) -> None:
    message = routed(failed_routes=["uk-b"])
    out = throttled_value(waiting(message.to_avro()), throttled_at, "sms.throttled")
    expected = message.model_copy(update={"throttled_at": throttled_at}).to_avro()
    assert out == expected
    assert RoutedMessage.from_avro(out).throttled_at == throttled_at.replace(
        microsecond=throttled_at.microsecond // 1000 * 1000)


def test_a_record_throttled_before_is_encoded_with_the_new_time() -> None:
    # A failover re-routes a message that was throttled once already: its throttled_at is not
    # null, so the last byte is not the null branch and the record is encoded again.
    message = routed(throttled_at=ROUTED_AT)
    later = ROUTED_AT + timedelta(seconds=3)
    out = throttled_value(waiting(message.to_avro()), later, "sms.throttled")
    assert out == message.model_copy(update={"throttled_at": later}).to_avro()


def test_a_record_of_an_older_framing_is_encoded_in_the_current_one() -> None:
    message = routed()
    current = message.to_avro()
    foreign = b"\xc3\x01" + b"\x00" * 8 + current[10:]  # another fingerprint, same body
    stale = Waiting(foreign, RoutedMessage.codec().decode(current))
    out = throttled_value(stale, ROUTED_AT, "sms.throttled")
    assert out.startswith(codec("RoutedMessage").header)
    assert out == message.model_copy(update={"throttled_at": ROUTED_AT}).to_avro()
