"""Router agent: ``sms.submitted`` → routing decision → tenant limits → ``sms.routed``.

Per record: decode; a quarantined tenant's record is parked on ``sms.held`` until its release
(:mod:`pipeline.agents.quarantine`); validate, ask the pure routing function for a route and
size the message in parts (refusals go to ``sms.rejected``); then the tenant's hard daily quota (the
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
from collections.abc import Container
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, cast

import faust

from pipeline.agents.quarantine import Hold
from pipeline.app import Worker
from pipeline.decoding import decode_or_reject
from pipeline.quota_table import QuotaBook
from pipeline.rejections import reject
from pipeline.scheduling import ScheduledStage, Ticket
from pipeline.traffic_counts import count_routed
from schemas.models import RoutedMessage, SubmitRequest
from smsflow.config.models import Tier
from smsflow.domain import route_engine
from smsflow.domain.encoding import SegmentPlan
from smsflow.domain.inbound import OPTED_OUT, is_opted_out
from smsflow.domain.limits import QUOTA_EXCEEDED, Released, SchedulerConfig, router_config
from smsflow.domain.route_engine import RouteRejection
from smsflow.domain.validation import ContentProblem, check_content
from smsflow.topics import REJECTED, ROUTED, SUBMITTED

log = logging.getLogger(__name__)

STAGE = "router"


UNKNOWN_OPERATOR_ID = "unknown"  # a country-wide route carried a number of no known operator


def refusal(
    request: SubmitRequest, engine: route_engine.Snapshot, now: float,
    opted_out: Container[str] = frozenset(),
) -> RouteRejection | tuple[route_engine.Decision, SegmentPlan]:
    """The routing decision and segment plan at ``now``, or why the message is refused.
    ``opted_out`` holds :func:`~smsflow.domain.inbound.opt_out_key` of every subscriber who
    sent the tenant STOP (the worker's opt-out table, pipeline/agents/opt_out.py)."""
    plan = check_content(request.source, request.body)
    if isinstance(plan, ContentProblem):
        return RouteRejection(plan.reason_code, plan.detail)
    decision = route_engine.decide(
        engine,
        route_engine.RouteRequest(
            request.tenant_id, request.destination, request.message_type,
            parts=plan.part_count,
        ),
        now,
    )
    if isinstance(decision, RouteRejection):
        return decision
    # An empty table (no STOP yet) is falsy: no key is built for every message then.
    if opted_out and is_opted_out(opted_out, request.tenant_id, decision.destination.e164):
        return RouteRejection(
            OPTED_OUT, f"{decision.destination.e164} opted out of {request.tenant_id!r} (STOP)"
        )
    return decision, plan


def routed_fields(
    request: SubmitRequest, decision: route_engine.Decision, plan: SegmentPlan, now: datetime
) -> dict[str, Any]:
    """The ``sms.routed`` record of a routed request, as its fields (``routed_at`` is replaced
    by the release time when the tenant's lane lets it go). Fields, not a model: the record
    waits in its lane and is then encoded, so a model would be built only to be taken apart
    again; every value is typed by the decision and the plan."""
    return {
        "request": request.avro_fields(),
        "destination": decision.destination.e164,
        "route_id": decision.route_id,
        "smsc_id": decision.smsc_id,
        "operator_id": decision.operator_id or UNKNOWN_OPERATOR_ID,
        "country": decision.country,
        "encoding": plan.encoding,
        "parts": plan.part_count,
        "routed_at": now,
        "failed_routes": [],
        "throttled_at": None,
    }


class Router:
    """The ``route`` agent's work, one event at a time, and its tenant lanes
    (:func:`register` wires it to the stream and the timer task)."""

    def __init__(self, worker: Worker, hold: Hold, opted_out: Container[str]) -> None:
        self._config_watcher = worker.config_watcher
        self._hold, self._opted_out = hold, opted_out
        self._rejected_out, self._routed_out = worker.output(REJECTED), worker.output(ROUTED)
        self._routed_topic_name = worker.name(ROUTED)
        self.stage: ScheduledStage[dict[str, Any]] = ScheduledStage(
            worker.app,
            name=STAGE,
            source_topic=worker.name(SUBMITTED),
            emit=self._emit,
            configure=self._configure,
            version=lambda: self._config_watcher.snapshot.version,
            total_partitions=worker.settings.partitions,
        )
        self._quota_book = QuotaBook(worker.app)

    def _configure(self, _owned: int, _total: int) -> SchedulerConfig:
        # Quotas are charged against the persisted table (quota_book), not the scheduler's
        # memory.
        config = router_config(self._config_watcher.snapshot.config)
        return replace(config, daily_quota=MappingProxyType({}))

    async def _emit(self, routed: dict[str, Any], released: Released) -> asyncio.Future[Any]:
        """Send a released record (its fields, :func:`routed_fields`) on, routed at its
        release."""
        routed["routed_at"] = datetime.fromtimestamp(released.released_at, UTC)
        route_id: str = routed["route_id"]
        sent = await self._routed_out.send(
            key=route_id.encode(),
            value=RoutedMessage.encode_fields(routed, self._routed_topic_name),
        )
        count_routed(routed["request"]["tenant_id"], routed["operator_id"], routed["parts"])
        return cast("asyncio.Future[Any]", sent)

    async def route(self, event: faust.EventT[bytes]) -> None:
        """Decide one ``sms.submitted`` record: held, refused, or queued in its tenant's lane."""
        stage = self.stage
        ticket = stage.track(event)
        snapshot = await self._config_watcher.wait_ready()
        request = await decode_or_reject(SubmitRequest, event, self._rejected_out, stage=STAGE)
        if request is None:
            stage.finish(ticket)
            return
        tenant = snapshot.tenant(request.tenant_id)
        if tenant is not None and tenant.quarantined:
            # Held, not rejected: released with the tenant (pipeline.agents.quarantine).
            await self._hold(event.key or request.tenant_id.encode(), event.value or b"")
            stage.finish(ticket)
            return
        decided = refusal(request, snapshot.engine, time.time(), self._opted_out)
        if isinstance(decided, RouteRejection):
            await self._refuse(event, ticket, request, decided.reason_code, decided.detail)
            return
        decision, plan = decided
        message = event.message
        over_quota = self._quota_book.charge(
            request.tenant_id, None if tenant is None else tenant.daily_quota,
            plan.part_count, time.time(), message.partition, message.offset,
        )
        if over_quota is not None:
            await self._refuse(event, ticket, request, QUOTA_EXCEEDED, over_quota.detail)
            return
        routed = routed_fields(request, decision, plan, datetime.now(UTC))
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
        if refused is not None:  # only quotas refuse, and they are charged above
            await self._refuse(event, ticket, request, refused.reason_code, refused.detail)
            return
        await stage.pass_on_released()

    async def _refuse(self, event: faust.EventT[bytes], ticket: Ticket, request: SubmitRequest,
                      reason_code: str, detail: str) -> None:
        """Dead-letter the record with its reason, then ack it in order."""
        await reject(event, self._rejected_out, stage=STAGE, reason_code=reason_code,
                     detail=detail, message_id=request.message_id, tenant_id=request.tenant_id)
        self.stage.finish(ticket)


def register(
    worker: Worker, hold: Hold, opted_out: Container[str] = frozenset()
) -> ScheduledStage[dict[str, Any]]:
    """The ``route`` agent, its tenant lanes and their timer, on ``worker``; a quarantined
    tenant's records go to ``hold`` (:mod:`pipeline.agents.quarantine`)."""
    app = worker.app
    router = Router(worker, hold, opted_out)
    worker.stages.append(router.stage)

    @app.agent(worker.topic(SUBMITTED))
    async def route(stream: faust.StreamT[bytes]) -> None:
        # noack: events are acked by the stage, in offset order, once passed on (or rejected).
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            await router.route(event)

    @app.task
    async def router_timer() -> None:
        """Releases what the tenant limits allow, sends it on, acks in order."""
        await router.stage.run()

    return router.stage
