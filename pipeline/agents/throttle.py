"""Throttle agent: ``sms.routed`` → rate-limit scheduler → ``sms.throttled``.

Every record becomes an item in the worker's :class:`~smsflow.domain.limits.Scheduler` (through
:class:`~pipeline.scheduling.ScheduledStage`): one lane per route (its ``tps`` lowered by AIMD,
``headroom`` kept for Premium), tiers from the tenant in the configuration snapshot, the
per-destination anti-burst window and this worker's share of the global cap (see
docs/rate-limits.md). The stream never waits for a limit: an item over its route's limit waits in
its lane while other routes' records keep flowing, even on the same partition (no head-of-line
blocking). Over a limit means wait, never drop. A record is acked only once its ``sms.throttled``
record is acknowledged by Kafka, and in offset order, so a crash while items wait loses nothing.

Adaptive throttling: :class:`~pipeline.submit_feedback.SubmitFeedback` reads ``sms.sent`` (the
sender's submit outcomes) and feeds each route's AIMD.

The records here were written by our router (or the sender's failover, or a parked release), so
they are read as the codec's fields, not validated again as pydantic models, and a released
record is its bytes as read with ``throttled_at`` written in (:func:`throttled_value`): about
a third of what the throttle cost per message, in a profile of the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import faust

from pipeline.agents.offpeak import Park
from pipeline.app import Worker
from pipeline.config_watch import ConfigSnapshot
from pipeline.decoding import INVALID_RECORD, decode_fields_or_reject
from pipeline.rejections import reject
from pipeline.scheduling import ScheduledStage, Ticket
from pipeline.submit_feedback import SubmitFeedback
from schemas.codec import AvroCodec
from schemas.models import RoutedMessage
from schemas.specialized import timestamp_millis, write_long
from smsflow.config.models import Tier
from smsflow.domain.limits import Released, SchedulerConfig, TierPolicy, throttle_config
from smsflow.domain.limits.hierarchy import tier_policy
from smsflow.kafka_security import kafka_connection
from smsflow.topics import REJECTED, ROUTED, SENT, THROTTLED

log = logging.getLogger(__name__)

STAGE = "throttle"


@dataclass(slots=True, frozen=True)
class Waiting:
    """A ``sms.routed`` record in its route's lane: its bytes as read and its fields."""

    value: bytes
    fields: dict[str, Any]

    @property
    def route_id(self) -> str:
        return cast("str", self.fields["route_id"])


def throttled_value(waiting: Waiting, throttled_at: datetime, topic: str) -> bytes:
    """The ``sms.throttled`` record of a released one: the record with ``throttled_at`` set.

    ``throttled_at`` is the last field of ``RoutedMessage``, a ``["null", timestamp-millis]``
    union; a record in the current single-object framing that has none ends in the null
    branch's byte ``00``, so the output is the input with that byte replaced by branch 1 and
    the timestamp: the same bytes an encode of the changed record gives
    (tests/unit/pipeline/test_throttled_value.py), without decoding into a model and encoding
    again. Any other record (an older version, the registry's framing, a ``throttled_at``
    already set by an earlier pass) is encoded from its fields.
    """
    codec = RoutedMessage.codec()
    value = waiting.value
    if (isinstance(codec, AvroCodec) and waiting.fields["throttled_at"] is None
            and value[-1] == 0 and value.startswith(codec.header)):
        out = bytearray(value)
        out[-1] = 2  # union branch 1 (zig-zag)
        write_long(out, timestamp_millis(throttled_at))
        return bytes(out)
    fields = {**waiting.fields, "throttled_at": throttled_at}
    if isinstance(codec, AvroCodec):
        return codec.encode(fields)
    return codec.encode(fields, topic)


class _Policies:
    """Tenant → tier and the tier policy for the current snapshot (rebuilt on a new version)."""

    def __init__(self) -> None:
        self._version = -2
        self._tiers: dict[str, Tier] = {}
        self._policy = TierPolicy()

    def _refresh(self, snapshot: ConfigSnapshot) -> None:
        if snapshot.version != self._version:
            self._tiers = {tenant.id: tenant.tier for tenant in snapshot.config.tenants}
            self._policy = tier_policy(snapshot.config)
            self._version = snapshot.version

    def tier_of(self, snapshot: ConfigSnapshot, tenant_id: str) -> Tier:
        self._refresh(snapshot)
        # A tenant removed after routing keeps flowing, as Standard.
        return self._tiers.get(tenant_id, Tier.STANDARD)

    def current(self, snapshot: ConfigSnapshot) -> TierPolicy:
        self._refresh(snapshot)
        return self._policy


class Throttle:
    """The ``throttle`` agent's work, one event at a time, its route lanes and the AIMD feedback
    (:func:`register` wires it to the stream and the timer tasks)."""

    def __init__(self, worker: Worker, park: Park) -> None:
        settings = worker.settings
        self._config_watcher, self._park = worker.config_watcher, park
        self._rejected_out, self._throttled_out = worker.output(REJECTED), worker.output(THROTTLED)
        self._routed_topic_name = worker.name(ROUTED)
        self._throttled_topic_name = worker.name(THROTTLED)
        self._policies = _Policies()
        self.stage: ScheduledStage[Waiting] = ScheduledStage(
            worker.app,
            name=STAGE,
            source_topic=self._routed_topic_name,
            emit=self._emit,
            divert=self._park_withdrawn,
            configure=self._configure,
            version=lambda: self._config_watcher.snapshot.version,
            total_partitions=settings.partitions,
        )
        self.feedback = SubmitFeedback(kafka_connection(settings), worker.name(SENT), self.stage,
                                       fetch_min_bytes=settings.fetch_min_bytes,
                                       fetch_max_wait_ms=settings.follower_fetch_max_wait_ms)

    def _configure(self, owned: int, total: int) -> SchedulerConfig:
        return throttle_config(self._config_watcher.snapshot.config, owned, total)

    async def _emit(self, waiting: Waiting, released: Released) -> asyncio.Future[Any]:
        value = throttled_value(waiting, datetime.fromtimestamp(released.released_at, UTC),
                                self._throttled_topic_name)
        sent = await self._throttled_out.send(key=waiting.route_id.encode(), value=value)
        return cast("asyncio.Future[Any]", sent)

    async def _park_withdrawn(self, waiting: Waiting, held: Released) -> asyncio.Future[Any]:
        """Economy still queued when its off-peak window closed: parked until the next one."""
        policy = self._policies.current(self._config_watcher.snapshot)
        release_at = policy.released_at(Tier.ECONOMY, held.released_at)
        return await self._park(waiting.route_id.encode(), waiting.value, release_at)

    async def throttle(self, event: faust.EventT[bytes]) -> None:
        """One ``sms.routed`` record: parked off-peak, refused if malformed, else queued in its
        route's lane."""
        stage = self.stage
        ticket = stage.track(event)
        snapshot = await self._config_watcher.wait_ready()
        fields = await decode_fields_or_reject(RoutedMessage, event, self._rejected_out,
                                               stage=STAGE)
        if fields is None:
            stage.finish(ticket)
            return
        request, parts, route_id = fields["request"], fields["parts"], fields["route_id"]
        if parts < 1:
            await self._refuse(event, ticket, request, INVALID_RECORD,
                               f"parts must be at least 1, got {parts}")
            return
        tier = self._policies.tier_of(snapshot, request["tenant_id"])
        policy = self._policies.current(snapshot)
        now = time.time()
        if policy.held(tier, now):
            # Outside its off-peak windows: parked on sms.deferred, not held here for hours.
            await self._park(event.key or route_id.encode(), event.value,
                             policy.released_at(tier, now))
            stage.finish(ticket)
            return
        # A route removed from config after routing is still delivered (unlimited lane): the
        # router's decision stands, and the sender owns the SMSC connection.
        refused = stage.offer(
            ticket, Waiting(event.value, fields),
            message_id=request["message_id"],
            tenant_id=request["tenant_id"],
            tier=tier,
            route_id=route_id,
            destination=request["destination"],
            parts=parts,
        )
        if refused is not None:  # only quotas refuse, and the throttle's config has none
            await self._refuse(event, ticket, request, refused.reason_code, refused.detail)
            return
        await stage.pass_on_released()

    async def _refuse(self, event: faust.EventT[bytes], ticket: Ticket,
                      request: dict[str, Any], reason_code: str, detail: str) -> None:
        """Dead-letter the record with its reason, then ack it in order."""
        await reject(event, self._rejected_out, stage=STAGE, reason_code=reason_code,
                     detail=detail, message_id=request["message_id"],
                     tenant_id=request["tenant_id"])
        self.stage.finish(ticket)


def register(worker: Worker, park: Park) -> ScheduledStage[Waiting]:
    """The ``throttle`` agent, its route lanes, their timer and the AIMD feedback reader."""
    app = worker.app
    throttler = Throttle(worker, park)
    worker.stages.append(throttler.stage)

    @app.agent(worker.topic(ROUTED))
    async def throttle(stream: faust.StreamT[bytes]) -> None:
        # noack: events are acked by the stage, in offset order, once passed on.
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            await throttler.throttle(event)

    @app.task
    async def throttle_timer() -> None:
        """Releases what the limits allow, sends it on, acks in order (see
        pipeline.scheduling)."""
        await throttler.stage.run()

    @app.task
    async def throttle_feedback() -> None:
        await throttler.feedback.run()

    return throttler.stage
