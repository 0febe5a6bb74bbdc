"""Throttle agent: ``sms.routed`` → rate-limit scheduler → ``sms.throttled``.

Every record becomes an item in the worker's :class:`~smsflow.domain.limits.Scheduler` (through
:class:`~pipeline.scheduling.ScheduledStage`): one lane per route (its ``tps`` lowered by AIMD,
``headroom`` kept for Premium), tiers from the tenant in the configuration snapshot, the
per-destination anti-burst window and this worker's share of the global cap (see
docs/rate-limits.md). The stream never waits for a limit: an item over its route's limit waits in
its lane while other routes' records keep flowing, even on the same partition (no head-of-line
blocking). Over a limit means wait, never drop. A record is acked only once its ``sms.throttled``
record is acknowledged by Kafka, and in offset order, so a crash while items wait loses nothing.

Adaptive throttling: :class:`SubmitFeedback` reads ``sms.sent`` (the sender's submit outcomes)
and feeds each route's AIMD. ``sms.sent`` is keyed by SMSC message id, not by route, so its
partitions have nothing to do with the ``sms.routed`` partitions a worker owns: a consumer group
would hand each worker an arbitrary slice of every route's outcomes, and a route's throttle would
see only part of its own feedback. So every worker reads *all* of ``sms.sent``, without a
consumer group (assigned partitions, from the end, nothing committed: a sample is advice, not
work), and keeps the outcomes of the routes it has lanes for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from pipeline.agents.offpeak import park
from pipeline.app import (
    app,
    rejected_out,
    routed_topic,
    routed_topic_name,
    sent_topic_name,
    settings,
    throttled_out,
    throttled_topic_name,
)
from pipeline.config_watch import ConfigSnapshot
from pipeline.decoding import decode
from pipeline.rejections import reject
from pipeline.runtime import config_watcher
from pipeline.scheduling import ScheduledStage
from schemas.codec import DecodeError
from schemas.models import RoutedMessage, SubmitOutcome
from schemas.summaries import SentSummary, parse_sent_summary
from smsflow.config.models import Tier
from smsflow.domain.limits import (
    Released,
    SchedulerConfig,
    SubmitSample,
    TierPolicy,
    throttle_config,
)
from smsflow.domain.limits.hierarchy import tier_policy
from smsflow.domain.smpp_status import StatusCategory

log = logging.getLogger(__name__)

STAGE = "throttle"
FEEDBACK_LOG_INTERVAL_S = 10.0


def _configure(owned: int, total: int) -> SchedulerConfig:
    return throttle_config(config_watcher.snapshot.config, owned, total)


async def _emit(routed: RoutedMessage, released: Released) -> asyncio.Future[Any]:
    out = routed.model_copy(
        update={"throttled_at": datetime.fromtimestamp(released.released_at, UTC)}
    )
    sent = await throttled_out.send(
        key=routed.route_id.encode(), value=out.to_avro(throttled_topic_name)
    )
    return cast("asyncio.Future[Any]", sent)


async def _park_withdrawn(routed: RoutedMessage, held: Released) -> asyncio.Future[Any]:
    """Economy still queued when its off-peak window closed: parked until the next one."""
    policy = _policies.current(config_watcher.snapshot)
    release_at = policy.released_at(Tier.ECONOMY, held.released_at)
    return await park(routed.route_id.encode(), routed.to_avro(routed_topic_name), release_at)


stage: ScheduledStage[RoutedMessage] = ScheduledStage(
    app,
    name=STAGE,
    source_topic=routed_topic_name,
    emit=_emit,
    divert=_park_withdrawn,
    configure=_configure,
    version=lambda: config_watcher.snapshot.version,
    total_partitions=settings.partitions,
)


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


_policies = _Policies()


@app.agent(routed_topic)
async def throttle(stream: faust.StreamT[bytes]) -> None:
    # noack: events are acked by the stage, in offset order, once passed on.
    async for event in stream.noack().events():  # type: ignore[attr-defined]
        ticket = stage.track(event)
        snapshot = await config_watcher.wait_ready()
        try:
            routed = await decode(RoutedMessage, event.value)
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
        if routed.parts < 1:
            await reject(event, rejected_out, stage=STAGE, reason_code="INVALID_RECORD",
                         detail=f"parts must be at least 1, got {routed.parts}",
                         message_id=routed.request.message_id,
                         tenant_id=routed.request.tenant_id)
            stage.finish(ticket)
            continue
        request = routed.request
        tier = _policies.tier_of(snapshot, request.tenant_id)
        policy = _policies.current(snapshot)
        now = time.time()
        if policy.held(tier, now):
            # Outside its off-peak windows: parked on sms.deferred, not held here for hours.
            await park(event.key or routed.route_id.encode(), event.value,
                       policy.released_at(tier, now))
            stage.finish(ticket)
            continue
        # A route removed from config after routing is still delivered (unlimited lane): the
        # router's decision stands, and the sender owns the SMSC connection.
        refused = stage.offer(
            ticket, routed,
            message_id=request.message_id,
            tenant_id=request.tenant_id,
            tier=tier,
            route_id=routed.route_id,
            destination=request.destination,
            parts=routed.parts,
        )
        if refused is not None:  # only quotas refuse, and the throttle's config has none
            await reject(event, rejected_out, stage=STAGE, reason_code=refused.reason_code,
                         detail=refused.detail, message_id=request.message_id,
                         tenant_id=request.tenant_id)
            stage.finish(ticket)


@app.task
async def throttle_timer() -> None:
    """Releases what the limits allow, sends it on, acks in order (see pipeline.scheduling)."""
    await stage.run()


def sample_of(outcome: SubmitOutcome | SentSummary) -> SubmitSample | None:
    """The AIMD sample a submit outcome gives, or None if it says nothing about the route.

    * A response status: its category (``ESME_RTHROTTLED``/``ESME_RMSGQFUL`` are back-pressure).
    * Accepted after more than one attempt: an earlier attempt was refused (the sender retries
      back-pressure and temporary errors without reporting them), so back-pressure.
    * No response (``command_status`` < 0) after waiting: a timeout, counted as its latency;
      without any wait (never submitted: no bind, expired, unsubmittable): no sample.
    """
    latency_s = outcome.latency_ms / 1000.0
    status = outcome.command_status
    if status < 0:
        return SubmitSample(latency_s, StatusCategory.TEMPORARY) if latency_s > 0 else None
    try:
        sample = SubmitSample.from_status(latency_s, status)
    except ValueError:
        return None
    if sample.category is StatusCategory.OK and outcome.attempts > 1:
        return SubmitSample(latency_s, StatusCategory.BACKPRESSURE)
    return sample


class SubmitFeedback:
    """Reads every partition of ``sms.sent`` from its end, without a consumer group, and feeds
    the outcomes of the routes this worker has lanes for to their AIMD (see module docstring)."""

    def __init__(self, bootstrap: str, topic: str, target: ScheduledStage[Any]) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._stage = target
        self.samples = 0  # folded into a route's AIMD
        self.foreign = 0  # outcomes of routes this worker has no lane for
        self.unusable = 0  # undecodable, or no sample (see sample_of)

    async def run(self) -> None:
        while True:
            try:
                await self._consume()
            except KafkaError as exc:
                # Feedback is advice: keep the flow going at the last rates, and reconnect.
                log.warning("throttle feedback from %s interrupted (%s); reconnecting",
                            self._topic, exc)
                await asyncio.sleep(2.0)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            # Assigning a partition makes the client fetch the topic's metadata; then take all.
            consumer.assign([TopicPartition(self._topic, 0)])
            waited = 0.0
            while not (partitions := consumer.partitions_for_topic(self._topic)):
                await asyncio.sleep(0.2)
                waited += 0.2
                if waited >= 30.0:
                    log.warning("throttle feedback: no metadata for %s yet", self._topic)
                    waited = 0.0
            tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            next_log = time.monotonic() + FEEDBACK_LOG_INTERVAL_S
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for records in batches.values():
                    for record in records:
                        await self._fold(record.value, record.headers)
                if time.monotonic() >= next_log:
                    next_log = time.monotonic() + FEEDBACK_LOG_INTERVAL_S
                    log.info("%s: feedback samples=%d foreign=%d unusable=%d", STAGE,
                             self.samples, self.foreign, self.unusable)
        finally:
            await consumer.stop()

    async def _fold(self, value: bytes | None,
                    headers: Sequence[tuple[str, bytes]] | None = None) -> None:
        outcome: SentSummary | SubmitOutcome | None = parse_sent_summary(headers)
        if outcome is None:  # no summary header (an older sender): decode the value
            try:
                outcome = await decode(SubmitOutcome, value)
            except (DecodeError, ValidationError):
                self.unusable += 1  # the delivery agent dead-letters it
                return
        if not self._stage.has_lane(outcome.route_id):
            self.foreign += 1
            return
        sample = sample_of(outcome)
        if sample is None:
            self.unusable += 1
            return
        self._stage.observe(outcome.route_id, sample)
        self.samples += 1


feedback = SubmitFeedback(settings.kafka_bootstrap, sent_topic_name, stage)


@app.task
async def throttle_feedback() -> None:
    await feedback.run()
