"""Rolling delivery windows per route, operator and tenant, and route health for the router.

``fan_out`` (``sms.sent`` + ``sms.dlr``, in batches): submit outcomes (per part) and terminal
reports (per message, the analysts' delivery rate) become window events, grouped by the three
window keys ``route:<id>``, ``operator:<id>``, ``tenant:<id>``; each key's batch becomes one
small *delta* window on ``sms.tracking-deltas`` keyed by window key. Neither input is keyed
that way, so this re-keying step is what lets one worker own each key's window. The batch is
acked only after its deltas are sent (at-least-once: a crash may count a batch twice, never
lose it).

``merge_windows`` (``sms.tracking-deltas``): adds each delta into the ``tracking-windows``
table (decoded states cached in memory while the partition is owned). For ``route:`` keys it
then runs the pure health rules (:func:`~smsflow.domain.tracking.evaluate`, hysteresis, probe,
:func:`~smsflow.domain.tracking.publish_decision`) with the route's ``route-health-state`` and
publishes a ``RouteHealth`` to the compacted ``sms.route-health`` topic, which every router
reads (:mod:`pipeline.health_watch`): degraded routes lose traffic, recovered ones win it back.

``evaluate_idle_routes`` (leader only): an empty delta per configured route every
``SMSFLOW_HEALTH_EVALUATE_EVERY_S`` seconds, so windows age, dwell and probe clocks run and
heartbeats reach the router even when a route carries no traffic.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, cast

import faust
from pydantic import ValidationError

from pipeline.app import (
    app,
    rejected_topic,
    route_health_topic,
    route_health_topic_name,
    sent_topic_name,
    settings,
    tracking_deltas_topic,
    tracking_inputs,
)
from pipeline.rejections import reject
from pipeline.runtime import config_watcher
from pipeline.tracking_policy import health_policy, window_spec
from schemas.codec import DecodeError
from schemas.models import DeliveryReport, RouteHealth, SubmitOutcome, SubmitStatus
from smsflow.domain.receipts import DlrStatus
from smsflow.domain.tracking import (
    HealthState,
    StateFormatError,
    TerminalEvent,
    WindowEvent,
    WindowState,
    evaluate,
    publish_decision,
    submit_event,
)
from smsflow.domain.tracking.windows import merge, stats, step_many

log = logging.getLogger(__name__)

STAGE = "tracking"
SPEC = window_spec(settings)
POLICY = health_policy(settings)
BATCH = 1_000

windows = app.Table("tracking-windows", key_type=str, value_type=bytes)
health_states = app.Table("route-health-state", key_type=str, value_type=bytes)

#: Decoded windows of the keys this worker owns (valid until the next rebalance).
_decoded: dict[str, WindowState] = {}


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _forget_decoded(_sender: Any, *args: Any, **_: Any) -> None:
    _decoded.clear()


app.on_partitions_revoked.connect(cast(Any, _forget_decoded))


def window_keys(route_id: str, operator_id: str, tenant_id: str) -> tuple[str, str, str]:
    return f"route:{route_id}", f"operator:{operator_id}", f"tenant:{tenant_id}"


def _window_event(topic: str, value: bytes | None, ts_ms: int) -> tuple[WindowEvent, str,
                                                                         str, str]:
    """The window event a record means and its route, operator and tenant ids."""
    if topic == sent_topic_name:
        sent = SubmitOutcome.from_avro(value)
        event: WindowEvent = submit_event(
            ts_ms, accepted=sent.outcome is SubmitStatus.ACCEPTED,
            command_status=sent.command_status, latency_ms=sent.latency_ms,
        )
        return event, sent.route_id, sent.operator_id, sent.tenant_id
    report = DeliveryReport.from_avro(value)
    return (TerminalEvent(ts_ms, DlrStatus(report.status.value)), report.route_id,
            report.operator_id, report.tenant_id)


@app.agent(tracking_inputs)
async def fan_out(stream: faust.StreamT[bytes]) -> None:
    # take_events is in faust-streaming's Stream but missing from its StreamT stub.
    async for batch in cast(Any, stream).take_events(BATCH, within=1.0):
        by_key: defaultdict[str, list[WindowEvent]] = defaultdict(list)
        for event in batch:
            message = event.message
            try:
                window_event, route_id, operator_id, tenant_id = _window_event(
                    message.topic, event.value, int(message.timestamp * 1000))
            except (DecodeError, ValidationError):
                # The correlator dead-letters a bad sms.sent record; sms.dlr is ours.
                log.warning("tracking: skipped an undecodable record %s/%d@%d",
                            message.topic, message.partition, message.offset)
                continue
            for key in window_keys(route_id, operator_id, tenant_id):
                by_key[key].append(window_event)
        now_ms = _now_ms()
        for key, events in by_key.items():
            delta = _step_many(events, now_ms)
            await tracking_deltas_topic.send(key=key.encode(), value=delta.to_bytes())


def _step_many(events: list[WindowEvent], now_ms: int) -> WindowState:
    return step_many(WindowState.empty(SPEC), events, now_ms)


def _stored_window(key: str) -> WindowState:
    cached = _decoded.get(key)
    if cached is not None:
        return cached
    value: bytes | None = windows.get(key)
    if value is not None:
        try:
            return WindowState.from_bytes(value, SPEC)
        except StateFormatError:  # another window shape (settings changed): start afresh
            log.warning("tracking: window %s has another shape; starting it empty", key)
    return WindowState.empty(SPEC)


@app.agent(tracking_deltas_topic)
async def merge_windows(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        key = (event.key or b"").decode()
        try:
            delta = WindowState.from_bytes(event.value or b"", SPEC)
        except StateFormatError as exc:
            await reject(event, rejected_topic, stage=STAGE, reason_code="INVALID_RECORD",
                         detail=f"window delta for {key!r}: {exc}")
            continue
        window = merge(_stored_window(key), delta)
        _decoded[key] = window
        windows[key] = window.to_bytes()
        if key.startswith("route:"):
            await _judge_route(key, key.removeprefix("route:"), window)


async def _judge_route(key: str, route_id: str, window: WindowState) -> None:
    now_ms = _now_ms()
    stored: bytes | None = health_states.get(key)
    health = HealthState.initial(now_ms)
    if stored is not None:
        try:
            health = HealthState.from_bytes(stored)
        except StateFormatError:
            log.warning("tracking: unreadable health state of %s; starting afresh", route_id)
    health, report = evaluate(health, stats(window, now_ms), route_id, now_ms, POLICY)
    health, publish = publish_decision(health, report, now_ms)
    health_states[key] = health.to_bytes()
    if publish:
        record = RouteHealth(**report.as_record())
        await route_health_topic.send(key=route_id.encode(),
                                      value=record.to_avro(route_health_topic_name))
        log.info("route %s: %s score=%.3f delivery=%s errors=%s p95=%s", route_id,
                 report.state.value, report.score, report.delivery_rate, report.error_rate,
                 report.submit_latency_p95_ms)


@app.timer(interval=settings.health_evaluate_every_s, on_leader=True)
async def evaluate_idle_routes() -> None:
    snapshot = config_watcher.snapshot
    empty = WindowState.empty(SPEC).to_bytes()
    for route in snapshot.config.routes:
        await tracking_deltas_topic.send(key=f"route:{route.id}".encode(), value=empty)
