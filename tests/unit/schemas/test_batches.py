"""The framing of the sender's receipt batches on ``sms.dlr.raw`` (schemas/batches.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.batches import RECEIPT_BATCH_MAGIC, is_receipt_batch, pack_receipts, receipt_values
from schemas.models import ReceiptEvent, ReceiptState

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
