"""Rolling delivery windows per route, operator and tenant, and route health for the router.

``count`` (``sms.sent`` + ``sms.dlr``, in batches read by :class:`~pipeline.window_feed.WindowFeed`
in the consumer group ``<app id>-tracking``, not as faust events): submit outcomes (per part)
and terminal reports (per message, the analysts' delivery rate) become window events, grouped
by the three window keys ``route:<id>``, ``operator:<id>``, ``tenant:<id>``; each key's batch
becomes one small *delta* window on ``sms.tracking-deltas`` keyed by window key. Neither input
is keyed that way, so this re-keying step is what lets one worker own each key's window. The
batch is committed only after its deltas are stored (at-least-once: a crash may count a batch
twice, never lose it).

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

import asyncio
import logging
import struct
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import faust
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from pipeline.app import Worker
from pipeline.decoding import INVALID_RECORD, decode
from pipeline.rejections import reject
from pipeline.tracking_policy import health_policy, window_spec
from pipeline.window_feed import WindowFeed
from schemas.batches import is_sent_batch, sent_entries
from schemas.codec import DecodeError
from schemas.models import DeliveryReport, RouteHealth, SubmitOutcome, SubmitStatus
from schemas.summaries import (
    ReportSummary,
    SentSummary,
    parse_report_summary,
    parse_sent_summary,
)
from smsflow.domain.receipts import DeliveryStatus
from smsflow.domain.tracking import (
    HealthState,
    StateFormatError,
    TerminalEvent,
    WindowEvent,
    WindowState,
    evaluate,
    observe_bind,
    publish_decision,
    submit_event,
)
from smsflow.domain.tracking.windows import merge, stats, step_many
from smsflow.kafka_security import kafka_connection
from smsflow.topics import DLR, REJECTED, ROUTE_HEALTH, SENT, TRACKING_DELTAS

log = logging.getLogger(__name__)

STAGE = "tracking"
#: A stored window is ``>iq`` (partition and offset of the last delta merged into it) + the
#: window's bytes. All deltas of a key come from one partition, in offset order, and the
#: position is written in the same changelog record as the window, so a delta replayed after a
#: crash (its offset not committed, its effect already in the recovered table) is skipped.
_POSITION = struct.Struct(">iq")

Position = tuple[int, int]
#: Statuses by value: a dict lookup per report, where ``DeliveryStatus(...)`` costs a
#: microsecond (enum's call machinery).
_DELIVERY_STATUSES: dict[str, DeliveryStatus] = {status.value: status
                                                 for status in DeliveryStatus}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000  # a sixth of datetime.now(UTC).timestamp()'s cost


def window_keys(route_id: str, operator_id: str, tenant_id: str) -> tuple[str, str, str]:
    return f"route:{route_id}", f"operator:{operator_id}", f"tenant:{tenant_id}"


async def window_event(is_sent: bool, value: bytes | None, ts_ms: int, headers: Any,
                       ) -> tuple[WindowEvent, str, str, str]:
    """The window event a record means and its route, operator and tenant ids: from its
    summary header when it has one (schemas.summaries), else from its value (decoded with
    retries while a schema registry is unreachable: skipping would lose the count)."""
    if is_sent:  # sms.sent, else sms.dlr
        summary = parse_sent_summary(_header_pairs(headers))
        if summary is None:
            sent = await decode(SubmitOutcome, value)
            summary = SentSummary(sent.route_id, sent.operator_id, sent.tenant_id,
                                  sent.outcome is SubmitStatus.ACCEPTED, sent.command_status,
                                  sent.latency_ms, sent.attempts)
        event: WindowEvent = submit_event(
            ts_ms, accepted=summary.accepted, command_status=summary.command_status,
            latency_ms=summary.latency_ms,
        )
        return event, summary.route_id, summary.operator_id, summary.tenant_id
    report = parse_report_summary(_header_pairs(headers))
    if report is None:
        full = await decode(DeliveryReport, value)
        report = ReportSummary(full.route_id, full.operator_id, full.tenant_id,
                               full.status.value)
    status = _DELIVERY_STATUSES.get(report.status)
    if status is None:
        raise ValueError(f"unknown delivery status {report.status!r}")
    return TerminalEvent(ts_ms, status), report.route_id, report.operator_id, report.tenant_id


def _header_pairs(headers: Any) -> Any:
    """faust hands headers over as a list of pairs or as a dict."""
    return headers.items() if isinstance(headers, dict) else headers


class Tracking:
    """The tracking agents' state and work; :func:`register` wires it to the streams.

    Holds the three tables (windows, health states, counted positions) and the in-memory
    caches that are valid while this worker owns their partitions (cleared at a revocation)."""

    def __init__(self, worker: Worker) -> None:
        app, settings = worker.app, worker.settings
        self._worker = worker
        self._spec, self._policy = window_spec(settings), health_policy(settings)
        self._rejected_out = worker.output(REJECTED)
        self._route_health_out = worker.output(ROUTE_HEALTH)
        self._deltas_out = worker.output(TRACKING_DELTAS)
        self._sent_topic, self._route_health_topic = worker.name(SENT), worker.name(ROUTE_HEALTH)
        self._windows = app.Table("tracking-windows", key_type=str, value_type=bytes)
        self._health_states = app.Table("route-health-state", key_type=str, value_type=bytes)
        #: Decoded windows of the keys this worker owns (valid until the next rebalance).
        self._decoded: dict[str, tuple[Position, WindowState]] = {}

    def forget(self, _sender: Any, *_args: Any, **_kwargs: Any) -> None:
        """``on_partitions_revoked``: the caches describe partitions we may no longer own."""
        self._decoded.clear()

    def owned_windows(self) -> list[tuple[str, WindowState]]:
        """This worker's rolling windows (``route:<id>``, ``operator:<id>``, ``tenant:<id>``).
        Each key has one owner, so summing over workers counts every window once; a window
        appears once a delta for it was merged since the last rebalance (routes get an empty
        delta every ``SMSFLOW_HEALTH_EVALUATE_EVERY_S``)."""
        return [(key, window) for key, (_, window) in list(self._decoded.items())]

    # ------------------------------------------------------------------ count

    async def count(self, records: Sequence[ConsumerRecord[bytes, bytes]],
                    ) -> list[asyncio.Future[Any]]:
        """One batch of ``sms.sent``/``sms.dlr`` records → one delta per window key; returns
        the deltas' sends (the feed commits the batch once they are stored)."""
        by_key: defaultdict[str, list[WindowEvent]] = defaultdict(list)
        for record in records:
            is_sent = record.topic == self._sent_topic
            try:
                if is_sent and is_sent_batch(record.value):  # schemas/batches.py
                    events = [await window_event(True, value, record.timestamp, headers)
                              for value, headers in sent_entries(
                                  record.value, _header_pairs(record.headers))]
                else:  # a record of one outcome or report: no list of entries built for it
                    events = [await window_event(is_sent, record.value, record.timestamp,
                                                 record.headers)]
            except (DecodeError, ValidationError, ValueError):
                # The correlator dead-letters a bad sms.sent record; sms.dlr is ours.
                log.warning("tracking: skipped an undecodable record %s/%d@%d",
                            record.topic, record.partition, record.offset)
                continue
            for counted, route_id, operator_id, tenant_id in events:
                for key in window_keys(route_id, operator_id, tenant_id):
                    by_key[key].append(counted)
        now_ms = _now_ms()
        return [
            await self._deltas_out.send(
                key=key.encode(),
                value=step_many(WindowState.empty(self._spec), events, now_ms).to_bytes())
            for key, events in by_key.items()
        ]

    # ------------------------------------------------------------------ merge_windows

    def _stored_window(self, key: str) -> tuple[Position, WindowState]:
        cached = self._decoded.get(key)
        if cached is not None:
            return cached
        value: bytes | None = self._windows.get(key)
        if value is not None and len(value) > _POSITION.size:
            try:
                partition, offset = _POSITION.unpack_from(value)
                return ((partition, offset),
                        WindowState.from_bytes(value[_POSITION.size:], self._spec))
            except StateFormatError:  # another window shape (settings changed): start afresh
                log.warning("tracking: window %s has another shape; starting it empty", key)
        return (-1, -1), WindowState.empty(self._spec)

    async def merge(self, event: faust.EventT[bytes]) -> None:
        """Add one delta into its window; judge the route when it is a route's."""
        key = (event.key or b"").decode()
        try:
            delta = WindowState.from_bytes(event.value or b"", self._spec)
        except StateFormatError as exc:
            await reject(event, self._rejected_out, stage=STAGE, reason_code=INVALID_RECORD,
                         detail=f"window delta for {key!r}: {exc}")
            return
        (partition, merged_through), stored = self._stored_window(key)
        message = event.message
        if message.partition == partition and message.offset <= merged_through:
            return  # replayed after a restart: already in the recovered window
        window = merge(stored, delta)
        self._decoded[key] = ((message.partition, message.offset), window)
        self._windows[key] = (_POSITION.pack(message.partition, message.offset)
                              + window.to_bytes())
        if key.startswith("route:"):
            await self._judge_route(key, key.removeprefix("route:"), window)

    async def _judge_route(self, key: str, route_id: str, window: WindowState) -> None:
        now_ms = _now_ms()
        stored: bytes | None = self._health_states.get(key)
        health = HealthState.initial(now_ms)
        if stored is not None:
            try:
                health = HealthState.from_bytes(stored)
            except StateFormatError:
                log.warning("tracking: unreadable health state of %s; starting afresh", route_id)
        # A route whose SMSC no sender holds a bind to is DOWN now (None: nothing known).
        smsc_id = self._worker.config_watcher.snapshot.smsc_of(route_id)
        bound = (None if smsc_id is None
                 else self._worker.bind_watcher.smsc_bound(smsc_id, now_ms))
        health = observe_bind(health, bound is not False)
        health, report = evaluate(health, stats(window, now_ms), route_id, now_ms, self._policy)
        health, publish = publish_decision(health, report, now_ms)
        self._health_states[key] = health.to_bytes()
        if publish:
            record = RouteHealth(**report.as_record())
            await self._route_health_out.send(key=route_id.encode(),
                                              value=record.to_avro(self._route_health_topic))
            log.info("route %s: %s score=%.3f delivery=%s errors=%s p95=%s", route_id,
                     report.state.value, report.score, report.delivery_rate, report.error_rate,
                     report.submit_latency_p95_ms)

    async def judge_routes(self, route_ids: Iterable[str]) -> None:
        """An empty delta per route: its owner judges it now (windows age, dwell and probe
        clocks run, heartbeats reach the router). An empty delta changes no window."""
        empty = WindowState.empty(self._spec).to_bytes()
        for route_id in route_ids:
            await self._deltas_out.send(key=f"route:{route_id}".encode(), value=empty)


def register(worker: Worker) -> Callable[[], list[tuple[str, WindowState]]]:
    """The tracking feed (``count``), the ``merge_windows`` agent, its tables and the idle-route
    timer.

    Returns the reader of this worker's rolling windows for the metrics page."""
    app, config_watcher = worker.app, worker.config_watcher
    tracking = Tracking(worker)
    app.on_partitions_revoked.connect(cast(Any, tracking.forget))

    # Its own consumer group (granted in k8s/kafka/users/kafkausers.yaml).
    settings = worker.settings
    feed = WindowFeed(kafka_connection(settings), [worker.name(SENT), worker.name(DLR)],
                      f"{settings.app_id}-tracking", tracking.count,
                      fetch_min_bytes=settings.fetch_min_bytes,
                      fetch_max_wait_ms=settings.follower_fetch_max_wait_ms)

    @app.task
    async def count_outcomes() -> None:
        """sms.sent + sms.dlr → window deltas (pipeline.window_feed), outside faust's streams."""
        await feed.run()

    @app.agent(worker.topic(TRACKING_DELTAS))
    async def merge_windows(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await tracking.merge(event)

    @app.timer(interval=worker.settings.health_evaluate_every_s, on_leader=True)
    async def evaluate_idle_routes() -> None:
        await tracking.judge_routes(route.id for route in config_watcher.snapshot.config.routes)

    async def judge_smsc_routes(smsc_id: str) -> None:
        """A bind state changed: every worker sends an empty delta per route of that SMSC."""
        await tracking.judge_routes(route.id for route in config_watcher.snapshot.config.routes
                                    if route.smsc == smsc_id)

    worker.bind_watcher.listen(judge_smsc_routes)
    return tracking.owned_windows
