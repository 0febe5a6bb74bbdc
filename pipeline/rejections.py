"""Turning a refused record into a ``Rejection`` on ``sms.rejected`` (the dead-letter topic)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import faust

from pipeline.outputs import OutputTopic
from schemas.models import Rejection

log = logging.getLogger(__name__)

#: Rejections sent by this worker, by (stage, reason code): read by the metrics page
#: (``smsflow_rejections_total``). Reason codes come from smsflow/domain/reasons.py, a closed
#: set, so the label set stays bounded.
counts: Counter[tuple[str, str]] = Counter()


async def reject(
    event: faust.EventT[bytes],
    topic: OutputTopic,
    *,
    stage: str,
    reason_code: str,
    detail: str,
    message_id: str | None = None,
    tenant_id: str | None = None,
    original: bytes | None = None,
    original_topic: str | None = None,
) -> Awaitable[Any]:
    """Send the original bytes with the reason; the caller then moves on to the next record.

    ``original``/``original_topic`` name the rejected record when it is not ``event`` itself
    (a timer command dead-letters a receipt stored earlier). Returns the send's future
    (done when the broker stored the rejection).
    """
    message = event.message
    if original is None and isinstance(message.value, bytes):
        original = message.value
    rejection = Rejection(
        reason_code=reason_code,
        reason=detail,
        stage=stage,
        message_id=message_id,
        tenant_id=tenant_id,
        source_topic=original_topic or message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
        original=original,
        rejected_at=datetime.now(UTC),
    )
    counts[stage, reason_code] += 1
    log.info(
        "rejected %s/%d@%d at %s: %s %s",
        message.topic, message.partition, message.offset, stage, reason_code, detail,
    )
    return await topic.send(
        key=tenant_id.encode() if tenant_id else None,
        value=rejection.to_avro(topic.get_topic_name()),
    )
