"""Router agent: ``sms.submitted`` → ``sms.routed`` (or ``sms.rejected``).

Decodes, validates, asks the pure routing function for a route, sizes the message in parts,
and forwards it keyed by route id so the throttle sees each route on one partition.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import faust
from pydantic import ValidationError

from pipeline.app import app, rejected_topic, routed_topic, routed_topic_name, submitted_topic
from pipeline.decoding import decode
from pipeline.rejections import reject
from pipeline.runtime import config_watcher
from schemas.codec import DecodeError
from schemas.models import MessageType, RoutedMessage, SubmitRequest, TextEncoding
from smsflow.config.models import MessageType as RouteMessageType
from smsflow.domain import route_engine
from smsflow.domain.encoding import EncodingError, SegmentPlan, plan_segments
from smsflow.domain.encoding import TextEncoding as BodyEncoding
from smsflow.domain.routing import RouteRejection
from smsflow.domain.validation import source_problem

log = logging.getLogger(__name__)

STAGE = "router"
MAX_PARTS = 10


_MESSAGE_TYPES = {wire: RouteMessageType(wire.value) for wire in MessageType}
UNKNOWN_OPERATOR_ID = "unknown"  # a country-wide route carried a number of no known operator


def _refusal(
    request: SubmitRequest, engine: route_engine.Snapshot
) -> RouteRejection | tuple[route_engine.Decision, SegmentPlan]:
    """The routing decision and segment plan, or why the message is refused."""
    if not request.body:
        return RouteRejection("EMPTY_BODY", "message body is empty")
    problem = source_problem(request.source)
    if problem is not None:
        return RouteRejection("INVALID_SOURCE", problem)
    try:
        plan = plan_segments(request.body, max_parts=MAX_PARTS)
    except EncodingError as exc:
        return RouteRejection("MESSAGE_TOO_LONG", str(exc))
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

        refusal = _refusal(request, snapshot.engine)
        if isinstance(refusal, RouteRejection):
            await reject(event, rejected_topic, stage=STAGE, reason_code=refusal.reason_code,
                         detail=refusal.detail, message_id=request.message_id,
                         tenant_id=request.tenant_id)
            continue
        decision, plan = refusal
        routed = RoutedMessage(
            request=request,
            destination=decision.destination.e164,
            route_id=decision.route_id,
            smsc_id=decision.smsc_id,
            operator_id=decision.operator_id or UNKNOWN_OPERATOR_ID,
            country=decision.country,
            encoding=TextEncoding.UCS2 if plan.encoding is BodyEncoding.UCS2 else TextEncoding.GSM7,
            parts=plan.part_count,
            routed_at=datetime.now(UTC),
        )
        await routed_topic.send(
            key=decision.route_id.encode(), value=routed.to_avro(routed_topic_name)
        )
