"""Router agent: ``sms.submitted`` → ``sms.routed`` (or ``sms.rejected``).

Decodes, validates, asks the pure routing function for a route, sizes the message in parts,
and forwards it keyed by route id so the throttle sees each route on one partition.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import faust
from pydantic import ValidationError

from pipeline.app import app, rejected_topic, routed_topic, routed_topic_name, submitted_topic
from pipeline.decoding import decode
from pipeline.rejections import reject
from pipeline.runtime import config_watcher
from schemas.codec import DecodeError
from schemas.models import RoutedMessage, SubmitRequest, TextEncoding
from smsflow.domain.encoding import EncodingError, SegmentPlan, plan_segments
from smsflow.domain.encoding import TextEncoding as BodyEncoding
from smsflow.domain.routing import RouteDecision, RouteRejection, RoutingTable, choose_route
from smsflow.domain.validation import source_problem

log = logging.getLogger(__name__)

STAGE = "router"
MAX_PARTS = 10


def _refusal(
    request: SubmitRequest, table: RoutingTable
) -> RouteRejection | tuple[RouteDecision, SegmentPlan]:
    """The routing decision and segment plan, or why the message is refused."""
    if not request.body:
        return RouteRejection("EMPTY_BODY", "message body is empty")
    problem = source_problem(request.source)
    if problem is not None:
        return RouteRejection("INVALID_SOURCE", problem)
    decision = choose_route(table, request.tenant_id, request.destination)
    if isinstance(decision, RouteRejection):
        return decision
    try:
        plan = plan_segments(request.body, max_parts=MAX_PARTS)
    except EncodingError as exc:
        return RouteRejection("MESSAGE_TOO_LONG", str(exc))
    return decision, plan


@app.agent(submitted_topic)
async def route(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        snapshot = await config_watcher.wait_ready()
        try:
            request = await decode(SubmitRequest, event.value)
        except DecodeError as exc:
            await reject(event, rejected_topic, stage=STAGE, reason_code=exc.reason_code,
                         detail=str(exc))
            continue
        except ValidationError as exc:
            await reject(event, rejected_topic, stage=STAGE, reason_code="INVALID_RECORD",
                         detail=str(exc).splitlines()[0])
            continue

        refusal = _refusal(request, snapshot.routing)
        if isinstance(refusal, RouteRejection):
            await reject(event, rejected_topic, stage=STAGE, reason_code=refusal.reason_code,
                         detail=refusal.detail, message_id=request.message_id,
                         tenant_id=request.tenant_id)
            continue
        decision, plan = refusal
        routed = RoutedMessage(
            request=request,
            route_id=decision.route_id,
            smsc_id=decision.smsc_id,
            operator_id=decision.operator_id,
            country=decision.country,
            encoding=TextEncoding.UCS2 if plan.encoding is BodyEncoding.UCS2 else TextEncoding.GSM7,
            parts=plan.part_count,
            routed_at=datetime.now(UTC),
        )
        await routed_topic.send(
            key=decision.route_id.encode(), value=routed.to_avro(routed_topic_name)
        )
