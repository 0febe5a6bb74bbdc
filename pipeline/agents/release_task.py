"""The one way a worker runs a :class:`~pipeline.deferral.DeferredReleaser`: records parked on
``parked`` go back to ``back_to`` (unchanged) when due, in consumer group
``<app id>-<group_suffix>``, as a task of the worker's faust app; or, when ``refuse`` gives a
reason, to ``sms.rejected`` instead (a dead letter with the original bytes).

Used by the off-peak hold (``sms.deferred`` → ``sms.routed``) and the quarantine hold
(``sms.held`` → ``sms.submitted``, or rejected after ``smsflow tenants release --reject-held``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from pipeline import rejections
from pipeline.app import Worker
from pipeline.deferral import DeferredReleaser
from schemas.models import Rejection
from smsflow.kafka_security import kafka_connection
from smsflow.topics import REJECTED

#: ``refuse(record)``: ``(reason_code, detail, message_id)`` when the due record is to be
#: rejected rather than sent back, else None.
Refuse = Callable[[Any], Awaitable["tuple[str, str, str | None] | None"]]


def register_releaser(
    worker: Worker,
    *,
    parked: str,
    back_to: str,
    group_suffix: str,
    ready: Callable[[], Awaitable[Any]] | None = None,
    refuse: Refuse | None = None,
    **releaser_options: Any,
) -> DeferredReleaser:
    """Build the releaser and start it as an app task once ``ready()`` (if given) returns."""
    settings = worker.settings
    back_out = worker.output(back_to)
    rejected_out = worker.output(REJECTED)
    stage = f"{group_suffix}-release"

    async def send_back(record: Any) -> asyncio.Future[Any]:
        refused = await refuse(record) if refuse is not None else None
        if refused is None:
            return cast("asyncio.Future[Any]",
                        await back_out.send(key=record.key, value=record.value))
        code, detail, message_id = refused
        tenant_id = (record.key or b"").decode(errors="replace") or None
        rejection = Rejection(
            reason_code=code, reason=detail, stage=stage, message_id=message_id,
            tenant_id=tenant_id, source_topic=record.topic, source_partition=record.partition,
            source_offset=record.offset, original=record.value, rejected_at=datetime.now(UTC))
        rejections.counts[stage, code] += 1
        return cast("asyncio.Future[Any]", await rejected_out.send(
            key=record.key, value=rejection.to_avro(rejected_out.name)))

    releaser = DeferredReleaser(
        kafka_connection(settings),
        worker.name(parked),
        f"{settings.app_id}-{group_suffix}",
        send_back,
        release_per_s=settings.deferred_release_per_s,
        **releaser_options,
    )

    async def release() -> None:
        if ready is not None:
            await ready()
        await releaser.run()

    release.__name__ = release.__qualname__ = f"release_{group_suffix}"
    worker.app.task(release)
    return releaser
