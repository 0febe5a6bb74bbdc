"""The delivery agents' pure adapters: receipt states to part outcomes, parts to one report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.agents.delivery import (
    NO_RECEIPT_REASON,
    accepted_part,
    complete_part,
    pack_parts,
    receipt_end,
    report_fields,
    report_of,
    terminal_status,
    unpack_parts,
)
from pipeline.app import Worker
from schemas.models import (
    DeliveryReport,
    DeliveryStatus,
    PartOutcome,
    ReceiptEvent,
    ReceiptState,
    SubmitOutcome,
    SubmitStatus,
)
from smsflow.domain.receipts import TERMINAL_STATUS_BY_STATE

SENT_AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _sent(part_index: int = 0, part_count: int = 1, *, smsc_id: str = "id-0") -> SubmitOutcome:
    return SubmitOutcome(
        message_id="m-1", tenant_id="acme-bank", client_ref=None, route_id="uk-direct",
        smsc_id="smsc-a", operator_id="uk-op", country="GB", destination="+447700900123",
        part_index=part_index, part_count=part_count, outcome=SubmitStatus.ACCEPTED,
        smsc_message_id=smsc_id, command_status=0, status_name="ESME_ROK", attempts=1,
        latency_ms=12, reason=None, submitted_at=SENT_AT - timedelta(seconds=1),
        sent_at=SENT_AT + timedelta(seconds=part_index), expires_at=SENT_AT + timedelta(days=1),
        receipt_requested=True,
    )


def _receipt(state: ReceiptState, error_code: int | None = None) -> ReceiptEvent:
    return ReceiptEvent(smsc_id="smsc-a", smsc_message_id="id-0", raw_message_id="id-0",
                        state=state, error_code=error_code, done_at=SENT_AT,
                        received_at=SENT_AT + timedelta(seconds=5), bind="smsc-a#0")


def test_every_receipt_state_maps_through_the_domain_table() -> None:
    for state in ReceiptState:
        domain = next((s for s in TERMINAL_STATUS_BY_STATE if s.value == state.value), None)
        expected = None if domain is None else TERMINAL_STATUS_BY_STATE[domain].value
        status = terminal_status(state)
        assert (None if status is None else status.value) == expected, state
    assert terminal_status(ReceiptState.ENROUTE) is None
    assert terminal_status(ReceiptState.DELETED) is DeliveryStatus.FAILED


@pytest.mark.parametrize(("state", "status", "reason"), [
    (ReceiptState.DELIVERED, DeliveryStatus.DELIVERED, None),
    (ReceiptState.UNDELIVERABLE, DeliveryStatus.UNDELIVERABLE, "receipt UNDELIVERABLE"),
    (ReceiptState.UNKNOWN, DeliveryStatus.FAILED, "receipt UNKNOWN"),
])
def test_a_terminal_receipt_completes_its_part(
    state: ReceiptState, status: DeliveryStatus, reason: str | None
) -> None:
    part = complete_part(_sent(), _receipt(state, error_code=7))
    assert (part.status, part.reason, part.error_code) == (status, reason, 7)
    assert part.done_at == SENT_AT + timedelta(seconds=5)  # when we learned it


def test_an_intermediate_receipt_cannot_complete_a_part() -> None:
    with pytest.raises(ValueError, match="ends nothing"):
        complete_part(_sent(), _receipt(ReceiptState.ENROUTE))


def test_a_part_without_a_receipt_request_ends_accepted_when_sent() -> None:
    part = accepted_part(_sent())
    assert (part.status, part.reason, part.done_at) == (
        DeliveryStatus.ACCEPTED, NO_RECEIPT_REASON, SENT_AT)


def test_the_report_of_a_multi_part_message_takes_the_worst_part() -> None:
    delivered = complete_part(_sent(0, 2, smsc_id="a"), _receipt(ReceiptState.DELIVERED))
    failed = PartOutcome(sent=_sent(1, 2, smsc_id="b"), status=DeliveryStatus.UNDELIVERABLE,
                         error_code=1, reason="receipt UNDELIVERABLE",
                         done_at=SENT_AT + timedelta(seconds=9))
    report = report_of([failed, delivered])
    assert report.status is DeliveryStatus.UNDELIVERABLE
    assert (report.error_code, report.reason) == (1, "receipt UNDELIVERABLE")
    assert report.smsc_message_ids == ["a", "b"]
    assert report.sent_at == SENT_AT + timedelta(seconds=1)
    assert report.done_at == SENT_AT + timedelta(seconds=9)
    assert report.parts == 2


def test_the_report_of_parts_read_as_fields_is_the_models_report() -> None:
    """The aggregator reads parts as the Avro reader's fields (enum symbols as strings,
    nested records as dicts) and encodes the report from fields: the same bytes as the models
    give, for every combination of part statuses."""
    for first, second in [(DeliveryStatus.DELIVERED, DeliveryStatus.DELIVERED),
                          (DeliveryStatus.ACCEPTED, DeliveryStatus.EXPIRED),
                          (DeliveryStatus.FAILED, DeliveryStatus.DELIVERED)]:
        parts = [PartOutcome(sent=_sent(i, 2, smsc_id=f"id-{i}"), status=status,
                             error_code=i or None, reason=f"r{i}",
                             done_at=SENT_AT + timedelta(seconds=9 - i))
                 for i, status in enumerate((first, second))]
        fields = [PartOutcome.codec().decode(part.to_avro()) for part in reversed(parts)]
        assert type(fields[0]["status"]) is str  # as the reader gives them
        report = report_fields(fields)
        assert DeliveryReport.encode_fields(report) == report_of(parts).to_avro()


@pytest.mark.parametrize("state", [ReceiptState.DELIVERED, ReceiptState.REJECTED])
def test_a_receipt_read_as_fields_ends_its_part_as_its_model_does(state: ReceiptState) -> None:
    receipt = _receipt(state, error_code=3)
    fields = ReceiptEvent.codec().decode(receipt.to_avro())
    assert receipt_end(fields) == receipt_end(receipt)


def test_collected_parts_pack_and_unpack() -> None:
    blobs = [b"", b"\x00\x01", b"x" * 300]
    assert unpack_parts(pack_parts(blobs)) == blobs


def test_the_factory_registers_both_delivery_agents_and_their_tables(worker: Worker) -> None:
    names = {name.rsplit(".", 1)[1] for name in worker.app.agents}
    assert {"correlate", "aggregate"} <= names
    assert {"dlr-pending", "dlr-parts"} <= set(worker.app.tables)
