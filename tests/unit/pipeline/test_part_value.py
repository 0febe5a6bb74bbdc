"""A part's record spliced from its submit outcome's bytes equals the encoded model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.part_value import PartEnd, part_value
from schemas.models import DeliveryStatus, PartOutcome, SubmitOutcome, SubmitStatus

SENT_AT = datetime(2026, 12, 5, 21, 30, 15, 123_000, tzinfo=UTC)


def submit_outcome(message_id: str = "m-1", reason: str | None = None,
                   smsc_message_id: str | None = "6f1c2a9e") -> SubmitOutcome:
    return SubmitOutcome(
        message_id=message_id, tenant_id="acme", client_ref=None, route_id="uk-a",
        smsc_id="smsc-a", operator_id="vodafone-uk", country="GB", destination="+447700900123",
        part_index=2, part_count=3, outcome=SubmitStatus.ACCEPTED,
        smsc_message_id=smsc_message_id, command_status=0, status_name="ESME_ROK", attempts=1,
        latency_ms=3.4, reason=reason, submitted_at=SENT_AT, sent_at=SENT_AT,
        expires_at=SENT_AT + timedelta(hours=48),
    )


@settings(max_examples=60, deadline=None)
@given(
    message_id=st.text(min_size=1, max_size=80),
    status=st.sampled_from(list(DeliveryStatus)),
    error_code=st.none() | st.integers(-(2**31), 2**31 - 1),
    reason=st.none() | st.text(max_size=70),
    done_ms=st.integers(0, 10**13),
)
def test_the_spliced_part_is_the_encoded_part(message_id: str, status: DeliveryStatus,
                                              error_code: int | None, reason: str | None,
                                              done_ms: int) -> None:
    sent = submit_outcome(message_id)
    done_at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=done_ms)
    end = PartEnd(status, error_code, reason, done_at)
    spliced = part_value(sent.to_avro(), end)
    assert spliced == (message_id, end.outcome(sent).to_avro())
    assert PartOutcome.from_avro(spliced[1]) == end.outcome(sent)


def test_a_submit_outcome_of_another_framing_is_not_spliced() -> None:
    value = submit_outcome().to_avro()
    other_version = value[:2] + bytes(8) + value[10:]
    end = PartEnd(DeliveryStatus.DELIVERED, None, None, SENT_AT)
    assert part_value(other_version, end) is None
    assert part_value(b"\x00\x00\x00\x00\x07" + value[10:], end) is None  # registry framing


@pytest.mark.parametrize("status", [DeliveryStatus.EXPIRED, DeliveryStatus.FAILED])
def test_optional_fields_of_the_submit_outcome_survive(status: DeliveryStatus) -> None:
    sent = submit_outcome(reason="throttled twice", smsc_message_id=None)
    end = PartEnd(status, 88, "receipt UNDELIV", SENT_AT)
    spliced = part_value(sent.to_avro(), end)
    assert spliced is not None
    assert PartOutcome.from_avro(spliced[1]).sent == sent
