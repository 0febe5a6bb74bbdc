"""The API's own sms.submitted encoder writes exactly the bytes of the contract's codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.submit_avro import SubmitEncoder, zigzag
from schemas.models import MessageType, SubmitRequest

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
optional_text = st.none() | text
instants = st.datetimes(  # hypothesis takes naive bounds and adds the zone
    min_value=datetime(1971, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(
    message_id=text, tenant_id=text, source=text, destination=text, body=text,
    message_type=st.sampled_from(MessageType), submitted_at=instants,
    validity_s=st.none() | st.integers(-(2**31), 2**31 - 1), registered_delivery=st.booleans(),
    client_ref=optional_text,
)
def test_same_bytes_as_the_contract_codec(
    message_id: str, tenant_id: str, source: str, destination: str, body: str,
    message_type: MessageType, submitted_at: datetime, validity_s: int | None,
    registered_delivery: bool, client_ref: str | None,
) -> None:
    request = SubmitRequest.model_construct(
        message_id=message_id, tenant_id=tenant_id, source=source, destination=destination,
        body=body, message_type=message_type, submitted_at=submitted_at, validity_s=validity_s,
        registered_delivery=registered_delivery, client_ref=client_ref,
    )
    encoder = SubmitEncoder.for_request(tenant_id, submitted_at)
    assert encoder is not None
    assert encoder.encode(
        message_id, source, destination, body, message_type, validity_s, registered_delivery,
        client_ref,
    ) == request.to_avro()


def test_another_offset_is_the_same_instant() -> None:
    at = datetime(2026, 12, 5, 12, 0, 0, 123_456, tzinfo=UTC)
    shifted = at.astimezone(timezone(timedelta(hours=5, minutes=30)))
    one = SubmitEncoder.for_request("t", at)
    other = SubmitEncoder.for_request("t", shifted)
    assert one is not None and other is not None
    args = ("m", "ACME", "+447700900123", "hi", MessageType.OTP, None, True, None)
    assert one.encode(*args) == other.encode(*args)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SubmitEncoder.for_request("t", datetime(2026, 12, 5))  # noqa: DTZ001 (the point)


def test_only_for_the_plain_codec_of_this_contract() -> None:
    assert SubmitEncoder.header_for(object()) is None  # e.g. a schema registry's wire codec


@given(st.integers(-(2**63), 2**63 - 1))
def test_zigzag_round_trips(n: int) -> None:
    data = zigzag(n)
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
    assert (value >> 1) ^ -(value & 1) == n
    assert all(b & 0x80 for b in data[:-1]) and not data[-1] & 0x80
