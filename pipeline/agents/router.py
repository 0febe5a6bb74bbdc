"""Router agent: ``sms.submitted`` → routing decision → tenant limits → ``sms.routed``.

Per record: decode; a quarantined tenant's record is parked on ``sms.held`` until its release
(:mod:`pipeline.agents.quarantine`); validate, ask the pure routing function for a route and size
the message in parts (refusals go to ``sms.rejected``); then the tenant's hard daily quota (the
``tenant-quota`` table, :mod:`pipeline.quota_table`: past it, a ``QUOTA_EXCEEDED`` rejection);
then the routed message waits in its **tenant's lane** of a
:class:`~pipeline.scheduling.ScheduledStage` (``router_config``: the tenant's
``rate_limit_pps``, burst ``burst`` parts) and is sent to ``sms.routed``, keyed by route id, when
the lane releases it. ``sms.submitted`` is keyed by tenant, so one partition sees all of a
tenant's traffic and both limits are exact.

The stream never waits for a limit: a tenant over its rate waits in its own lane while other
tenants' records, even on the same partition, keep flowing (no head-of-line blocking), so one
tenant's burst reaches the throttle at its agreed rate and cannot fill a route's queue ahead of
other tenants. Over the limit means wait, never drop: a record is acked (so committable) only
once its ``sms.routed`` record (or its rejection) is acknowledged by Kafka, in offset order, so
a crash while records wait loses nothing.

The routing decision is made before the wait (it sizes the message, which the lane counts in
parts); a message that waits long is sent on the route chosen when it arrived. ``routed_at`` is
when the lane released it (when it was routed on), so ``throttled_at - routed_at`` stays the
wait in the throttle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, cast

import faust
from pydantic import ValidationError

from pipeline.agents.quarantine import hold
from pipeline.app import (
    app,
    rejected_out,
    routed_out,
    routed_topic_name,
    settings,
    submitted_topic,
)
from pipeline.config_watch import Snapshot
from pipeline.decoding import decode
from pipeline.quota_table import QuotaBook
from pipeline.rejections import reject
from pipeline.runtime import config_watcher
from pipeline.scheduling import ScheduledStage
from schemas.codec import DecodeError
from schemas.models import MessageType, RoutedMessage, SubmitRequest, TextEncoding
from smsflow.config.models import MessageType as RouteMessageType
from smsflow.config.models import Tenant, Tier
from smsflow.domain import route_engine
from smsflow.domain.encoding import SegmentPlan
from smsflow.domain.encoding import TextEncoding as BodyEncoding
from smsflow.domain.limits import QUOTA_EXCEEDED, Released, SchedulerConfig, router_config
from smsflow.domain.routing import RouteRejection
from smsflow.domain.validation import ContentProblem, check_content

log = logging.getLogger(__name__)

STAGE = "router"


_MESSAGE_TYPES = {wire: RouteMessageType(wire.value) for wire in MessageType}
UNKNOWN_OPERATOR_ID = "unknown"  # a country-wide route carried a number of no known operator


def _refusal(
    request: SubmitRequest, engine: route_engine.Snapshot
) -> RouteRejection | tuple[route_engine.Decision, SegmentPlan]:
    """The routing decision and segment plan, or why the message is refused."""
    plan = check_content(request.source, request.body)
    if isinstance(plan, ContentProblem):
        return RouteRejection(plan.reason_code, plan.detail)
    decision = route_engine.decide(
        engine,
        route_engine.RouteRequest(
            request.tenant_id, request.destination, _MESSAGE_TYPES[request.message_type],
            parts=plan.part_count,
        ),
        time.time(),
    )
    if isinstance(decision, route_engine.Rejection):
        return RouteRejection(decision.reason_code, decision.detail)
    return decision, plan


def _configure(_owned: int, _total: int) -> SchedulerConfig:
    # Quotas are charged against the persisted table (quota_book), not the scheduler's memory.
    config = router_config(config_watcher.snapshot.config)
    return replace(config, daily_quota=MappingProxyType({}))


async def _emit(routed: RoutedMessage, released: Released) -> asyncio.Future[Any]:
    out = routed.model_copy(
        update={"routed_at": datetime.fromtimestamp(released.released_at, UTC)}
    )
    sent = await routed_out.send(
        key=routed.route_id.encode(), value=out.to_avro(routed_topic_name)
    )
    return cast("asyncio.Future[Any]", sent)


stage: ScheduledStage[RoutedMessage] = ScheduledStage(
    app,
    name=STAGE,
    source_topic=submitted_topic.get_topic_name(),
    emit=_emit,
    configure=_configure,
    version=lambda: config_watcher.snapshot.version,
    total_partitions=settings.partitions,
)
quota_book = QuotaBook(app)


class _Tenants:
    """Tenant id → configuration for the current snapshot (rebuilt when the version changes)."""

    def __init__(self) -> None:
        self._version = -2
        self._tenants: dict[str, Tenant] = {}

    def of(self, snapshot: Snapshot, tenant_id: str) -> Tenant | None:
        if snapshot.version != self._version:
            self._tenants = {tenant.id: tenant for tenant in snapshot.config.tenants}
            self._version = snapshot.version
        return self._tenants.get(tenant_id)


_tenants = _Tenants()


@app.agent(submitted_topic)
async def route(stream: faust.StreamT[bytes]) -> None:
    # noack: events are acked by the stage, in offset order, once passed on (or rejected).
    async for event in stream.noack().events():  # type: ignore[attr-defined]
        ticket = stage.track(event)
        snapshot = await config_watcher.wait_ready()
        try:
            request = await decode(SubmitRequest, event.value)
        except DecodeError as exc:
            await reject(event, rejected_out, stage=STAGE, reason_code=exc.reason_code,
                         detail=str(exc))
            stage.finish(ticket)
            continue
        except ValidationError as exc:
            await reject(event, rejected_out, stage=STAGE, reason_code="INVALID_RECORD",
                         detail=str(exc).splitlines()[0])
            stage.finish(ticket)
            continue

        tenant = _tenants.of(snapshot, request.tenant_id)
        if tenant is not None and tenant.quarantined:
            # Held, not rejected: released with the tenant (pipeline.agents.quarantine).
            await hold(event.key or request.tenant_id.encode(), event.value)
            stage.finish(ticket)
            continue
        refusal = _refusal(request, snapshot.engine)
        if isinstance(refusal, RouteRejection):
            await reject(event, rejected_out, stage=STAGE, reason_code=refusal.reason_code,
                         detail=refusal.detail, message_id=request.message_id,
                         tenant_id=request.tenant_id)
            stage.finish(ticket)
            continue
        decision, plan = refusal
        message = event.message
        over_quota = quota_book.charge(
            request.tenant_id, None if tenant is None else tenant.daily_quota,
            plan.part_count, time.time(), message.partition, message.offset,
        )
        if over_quota is not None:
            await reject(event, rejected_out, stage=STAGE, reason_code=QUOTA_EXCEEDED,
                         detail=over_quota.detail, message_id=request.message_id,
                         tenant_id=request.tenant_id)
            stage.finish(ticket)
            continue
        routed = RoutedMessage(
            request=request,
            destination=decision.destination.e164,
            route_id=decision.route_id,
            smsc_id=decision.smsc_id,
            operator_id=decision.operator_id or UNKNOWN_OPERATOR_ID,
            country=decision.country,
            encoding=TextEncoding.UCS2 if plan.encoding is BodyEncoding.UCS2 else TextEncoding.GSM7,
            parts=plan.part_count,
            routed_at=datetime.now(UTC),  # replaced by the release time (_emit)
        )
        # Lanes are per tenant (router_config); route and number ride along for the metrics.
        refused = stage.offer(
            ticket, routed,
            message_id=request.message_id,
            tenant_id=request.tenant_id,
            tier=Tier.STANDARD if tenant is None else tenant.tier,
            route_id=decision.route_id,
            destination=decision.destination.e164,
            parts=plan.part_count,
        )
        if refused is not None:  # only quotas refuse, and they are charged above, not here
            await reject(event, rejected_out, stage=STAGE, reason_code=refused.reason_code,
                         detail=refused.detail, message_id=request.message_id,
                         tenant_id=request.tenant_id)
            stage.finish(ticket)


@app.task
async def router_timer() -> None:
    """Releases what the tenant limits allow, sends it on, acks in order."""
    await stage.run()
