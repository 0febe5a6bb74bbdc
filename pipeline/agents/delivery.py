"""Delivery agents: receipts ↔ submit outcomes → one terminal report per message.

Stage 1, ``correlate`` (``sms.sent`` + ``sms.dlr.raw``, both keyed ``<smsc>:<smsc message id>``
and so co-partitioned): whichever of the pair arrives first waits in the ``dlr-pending`` table;
the second completes the part and emits a ``PartOutcome`` keyed by message id. A receipt may
arrive before its submit outcome (the SMSC is fast, our producer is not) — it simply waits.
A part that failed to submit has no receipt to wait for and completes at once.

Stage 2, ``aggregate`` (``sms.dlr.parts``, keyed by message id): single-part messages report at
once; multi-part ones collect their parts in the ``dlr-parts`` table until all are in, then emit
one ``DeliveryReport`` on ``sms.dlr`` keyed by tenant id.
"""

from __future__ import annotations

import logging
import struct
from datetime import UTC, datetime

import faust
from pydantic import ValidationError

from pipeline.app import (
    app,
    dlr_parts_topic,
    dlr_parts_topic_name,
    dlr_topic,
    dlr_topic_name,
    rejected_topic,
    sent_and_receipts_topic,
    sent_topic_name,
)
from pipeline.decoding import decode
from pipeline.rejections import reject
from schemas.codec import DecodeError
from schemas.models import (
    DeliveryReport,
    DeliveryStatus,
    PartOutcome,
    ReceiptEvent,
    ReceiptState,
    SubmitOutcome,
    SubmitStatus,
)
from smsflow.domain.delivery import message_status

log = logging.getLogger(__name__)

STAGE = "dlr"
_SENT_TAG = b"S"
_RECEIPT_TAG = b"R"

#: Receipt states that end a part, and the part status they mean. ENROUTE and ACCEPTED are
#: intermediate. DELETED and UNKNOWN are final answers that are not a delivery (as in Kannel).
TERMINAL_RECEIPT_STATES: dict[ReceiptState, DeliveryStatus] = {
    ReceiptState.DELIVERED: DeliveryStatus.DELIVERED,
    ReceiptState.UNDELIVERABLE: DeliveryStatus.UNDELIVERABLE,
    ReceiptState.EXPIRED: DeliveryStatus.EXPIRED,
    ReceiptState.REJECTED: DeliveryStatus.REJECTED,
    ReceiptState.DELETED: DeliveryStatus.FAILED,
    ReceiptState.UNKNOWN: DeliveryStatus.FAILED,
}

# No default factory: a missing key reads as None through .get().
pending = app.Table("dlr-pending", key_type=str, value_type=bytes)
collected = app.Table("dlr-parts", key_type=str, value_type=bytes)


def _complete(sent: SubmitOutcome, receipt: ReceiptEvent) -> PartOutcome:
    return PartOutcome(
        sent=sent,
        status=TERMINAL_RECEIPT_STATES[receipt.state],
        error_code=receipt.error_code,
        reason=None if receipt.state is ReceiptState.DELIVERED else f"receipt {receipt.state}",
        # When we learned it; the receipt's own "done date" is often minute-precision only.
        done_at=receipt.received_at,
    )


async def _emit_part(part: PartOutcome) -> None:
    await dlr_parts_topic.send(
        key=part.sent.message_id.encode(), value=part.to_avro(dlr_parts_topic_name)
    )


@app.agent(sent_and_receipts_topic)
async def correlate(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        is_sent = event.message.topic == sent_topic_name
        try:
            record: SubmitOutcome | ReceiptEvent = (
                await decode(SubmitOutcome, event.value)
                if is_sent
                else await decode(ReceiptEvent, event.value)
            )
        except DecodeError as exc:
            await reject(event, rejected_topic, stage=STAGE, reason_code=exc.reason_code,
                         detail=str(exc))
            continue
        except ValidationError as exc:
            await reject(event, rejected_topic, stage=STAGE, reason_code="INVALID_RECORD",
                         detail=str(exc).splitlines()[0])
            continue
        key = (event.key or b"").decode()
        if isinstance(record, SubmitOutcome):
            await _on_sent(key, record, event.value)
        else:
            await _on_receipt(key, record, event.value)


async def _on_sent(key: str, sent: SubmitOutcome, raw: bytes) -> None:
    if sent.outcome is SubmitStatus.FAILED:
        await _emit_part(
            PartOutcome(
                sent=sent, status=DeliveryStatus.FAILED, error_code=sent.command_status,
                reason=sent.reason or sent.status_name, done_at=sent.sent_at,
            )
        )
        return
    waiting: bytes | None = pending.get(key)
    if waiting is None:
        pending[key] = _SENT_TAG + raw
    elif waiting[:1] == _RECEIPT_TAG:
        del pending[key]
        await _emit_part(_complete(sent, ReceiptEvent.from_avro(waiting[1:])))
    else:
        # At-least-once redelivery of the same submit outcome; the first copy is waiting.
        log.debug("duplicate submit outcome for %s", key)


async def _on_receipt(key: str, receipt: ReceiptEvent, raw: bytes) -> None:
    if receipt.state not in TERMINAL_RECEIPT_STATES:
        log.debug("intermediate receipt %s for %s", receipt.state, key)
        return
    waiting: bytes | None = pending.get(key)
    if waiting is None:
        pending[key] = _RECEIPT_TAG + raw
    elif waiting[:1] == _SENT_TAG:
        del pending[key]
        await _emit_part(_complete(SubmitOutcome.from_avro(waiting[1:]), receipt))
    else:
        log.debug("duplicate receipt for %s", key)


def _pack(blobs: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(blob)) + blob for blob in blobs)


def _unpack(data: bytes) -> list[bytes]:
    blobs, offset = [], 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        blobs.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return blobs


def _report(parts: list[PartOutcome]) -> DeliveryReport:
    parts.sort(key=lambda p: p.sent.part_index)
    first, last_done = parts[0], max(parts, key=lambda p: p.done_at)
    status = DeliveryStatus(message_status(p.status.value for p in parts))
    worst = next((p for p in parts if p.status is status), first)
    return DeliveryReport(
        message_id=first.sent.message_id,
        tenant_id=first.sent.tenant_id,
        client_ref=first.sent.client_ref,
        route_id=first.sent.route_id,
        smsc_id=first.sent.smsc_id,
        operator_id=first.sent.operator_id,
        country=first.sent.country,
        destination=first.sent.destination,
        parts=first.sent.part_count,
        status=status,
        error_code=worst.error_code,
        reason=worst.reason,
        smsc_message_ids=[p.sent.smsc_message_id for p in parts if p.sent.smsc_message_id],
        submitted_at=first.sent.submitted_at,
        sent_at=max(p.sent.sent_at for p in parts),
        done_at=last_done.done_at,
    )


@app.agent(dlr_parts_topic)
async def aggregate(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        try:
            part = await decode(PartOutcome, event.value)
        except (DecodeError, ValidationError) as exc:
            code = exc.reason_code if isinstance(exc, DecodeError) else "INVALID_RECORD"
            await reject(event, rejected_topic, stage=STAGE, reason_code=code,
                         detail=str(exc).splitlines()[0])
            continue
        if part.sent.part_count == 1:
            parts = [part]
        else:
            key = part.sent.message_id
            stored = _unpack(collected.get(key) or b"")
            parts = [PartOutcome.from_avro(blob) for blob in stored]
            if any(p.sent.part_index == part.sent.part_index for p in parts):
                log.debug("duplicate part %d of %s", part.sent.part_index, key)
                continue
            parts.append(part)
            if len(parts) < part.sent.part_count:
                collected[key] = _pack([*stored, event.value])
                continue
            del collected[key]
        report = _report(parts)
        await dlr_topic.send(key=report.tenant_id.encode(), value=report.to_avro(dlr_topic_name))
        log.debug("%s %s at %s", report.message_id, report.status, datetime.now(UTC))
