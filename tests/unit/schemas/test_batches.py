"""The framing of batch records: receipts on ``sms.dlr.raw``, submit outcomes on ``sms.sent``
(schemas/batches.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.batches import (
    RECEIPT_BATCH_MAGIC,
    is_receipt_batch,
    is_sent_batch,
    pack_receipts,
    pack_sent,
    receipt_values,
    sent_entries,
    sent_key,
    sent_values,
)
from schemas.models import ReceiptEvent, ReceiptState, SubmitOutcome, SubmitStatus
from schemas.summaries import parse_sent_summary, sent_summary_header

TOPIC = "unit.sms.dlr.raw"


def _receipt(smsc_message_id: str) -> bytes:
    now = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)
    return ReceiptEvent(
        smsc_id="smsc-uk", smsc_message_id=smsc_message_id, raw_message_id=smsc_message_id,
        state=ReceiptState.DELIVERED, error_code=None, done_at=now, received_at=now, bind="rx-0",
    ).to_avro(TOPIC)


def test_a_batch_gives_back_its_receipts_in_order() -> None:
    values = [_receipt("a1"), _receipt("b2"), _receipt("c3")]
    record = pack_receipts(values)
    assert record.startswith(RECEIPT_BATCH_MAGIC) and is_receipt_batch(record)
    assert list(receipt_values(record)) == values
    assert [ReceiptEvent.from_avro(v).smsc_message_id for v in receipt_values(record)] == [
        "a1", "b2", "c3"]


def test_a_record_of_one_receipt_is_its_own_value() -> None:
    value = _receipt("solo")
    assert not is_receipt_batch(value)
    assert list(receipt_values(value)) == [value]
    assert list(receipt_values(None)) == [] and not is_receipt_batch(None)


@pytest.mark.parametrize("cut", [1, 3, 5])
def test_a_batch_cut_short_is_an_error_not_fewer_receipts(cut: int) -> None:
    record = pack_receipts([_receipt("a1"), _receipt("b2")])[:-cut]
    with pytest.raises(ValueError, match="receipt batch"):
        list(receipt_values(record))


def _outcome(message_id: str, *, accepted: bool = True) -> SubmitOutcome:
    now = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)
    return SubmitOutcome(
        message_id=message_id, tenant_id="acme", client_ref=None, route_id="uk-direct",
        smsc_id="smsc-uk", operator_id="gb-ee", country="GB", destination="+447700900123",
        part_index=0, part_count=1,
        outcome=SubmitStatus.ACCEPTED if accepted else SubmitStatus.FAILED,
        smsc_message_id=f"id-{message_id}" if accepted else None,
        command_status=0 if accepted else 0x45, status_name="ESME_ROK", attempts=1,
        latency_ms=2.5, reason=None, submitted_at=now, sent_at=now, expires_at=now,
    )


def _summary(outcome: SubmitOutcome) -> tuple[str, bytes]:
    return sent_summary_header(outcome.route_id, outcome.operator_id, outcome.tenant_id,
                               outcome.outcome is SubmitStatus.ACCEPTED, outcome.command_status,
                               outcome.latency_ms, outcome.attempts)


def test_a_sent_batch_pairs_each_outcome_with_its_own_summary() -> None:
    outcomes = [_outcome("m1"), _outcome("m2", accepted=False), _outcome("m3")]
    record = pack_sent(o.to_avro("unit.sms.sent") for o in outcomes)
    headers = [("another-header", b"x"), *map(_summary, outcomes)]
    assert is_sent_batch(record) and not is_receipt_batch(record)
    entries = sent_entries(record, headers)
    assert [SubmitOutcome.from_avro(value).message_id for value, _ in entries] == [
        "m1", "m2", "m3"]
    summaries = [parse_sent_summary(h) for _, h in entries]
    assert [s.accepted if s else None for s in summaries] == [True, False, True]
    assert list(sent_values(record)) == [value for value, _ in entries]


def test_a_sent_batch_without_matching_summaries_hands_none() -> None:
    outcomes = [_outcome("m1"), _outcome("m2")]
    record = pack_sent(o.to_avro("unit.sms.sent") for o in outcomes)
    assert [h for _, h in sent_entries(record, [_summary(outcomes[0])])] == [None, None]
    assert [h for _, h in sent_entries(record, None)] == [None, None]


def test_a_record_of_one_outcome_is_itself_with_its_headers() -> None:
    value = _outcome("solo").to_avro("unit.sms.sent")
    headers = [_summary(_outcome("solo"))]
    assert sent_entries(value, headers) == [(value, headers)]
    assert list(sent_values(value)) == [value] and list(sent_values(None)) == []
    with pytest.raises(ValueError, match="outcome batch"):
        sent_entries(pack_sent([value, value])[:-2], None)


def test_sent_keys_are_the_senders() -> None:
    assert sent_key("smsc-uk", "abc", "m1", 0) == "smsc-uk:abc"  # meets its receipt
    assert sent_key("smsc-uk", None, "m1", 2) == "m1:2"  # a failed part
