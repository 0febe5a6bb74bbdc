"""Tenant webhooks: ``sms.dlr`` and ``sms.inbound`` → a signed POST to each tenant's URL.

Two kinds of record go out the same way: delivery reports (``sms.dlr``, body ``"type":
"report"``) and inbound MO messages (``sms.inbound``, ``"type": "mo"``, to the webhook's
``mo_url`` if it has one, not at all if its ``mo`` is false). One consumer reads both topics;
each topic has its own ack ledger and back-pressure, each (tenant, kind) its own lane.
Below, "report" stands for either.

One asyncio event loop does everything, so no state needs a lock: it polls the confluent-kafka
consumer without blocking (rebalance callbacks run inside that call, on the loop's thread),
serves producer callbacks, and runs one task per report being delivered (aiohttp).

* **Never blocking other tenants.** Each tenant has its own lane per kind (:class:`Lane`) with
  at most ``max_in_flight`` reports in delivery; a report waiting for a retry keeps its slot,
  nobody else's. Consumption goes on while a lane waits, until a tenant's backlog or a
  partition's ledger passes its bound (:mod:`backpressure`): then that partition pauses.
* **At-least-once.** A report is finished when its endpoint answered 2xx, or when its
  ``Rejection`` was acknowledged by Kafka. Offsets are committed from the ack ledgers
  (:mod:`ledger`, one per topic): never past an unfinished report, so a crash re-sends, never
  loses. An MO message without a tenant (an older sender published those; today's sender
  dead-letters them) is never posted: it is counted as skipped.
* **Live configuration.** The config topic is re-read every ``config_refresh_s`` with the
  same reader the CLI and the sender use (``read_config``); every attempt uses the tenant's
  webhook as it is then.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from connectors.webhooks.backpressure import Backpressure, Changes
from connectors.webhooks.http import new_session, post_event
from connectors.webhooks.lanes import Lane, Stats, WebhookJob
from connectors.webhooks.ledger import AckLedger, AckTicket
from connectors.webhooks.metrics import WebhookCollector
from connectors.webhooks.payload import KINDS, MO, REPORT, Kind, mo_body, report_body
from connectors.webhooks.policy import Verdict, WebhookRetryPolicy, classify
from schemas.codec import DecodeError
from schemas.models import DeliveryReport, InboundMessage, Rejection
from schemas.retrying import decode
from smsflow.config.kafka_io import read_config
from smsflow.config.models import WEBHOOK_SECRET_MIN, PlatformConfig, Webhook
from smsflow.config.secrets import SecretResolutionError, resolve
from smsflow.kafka_clients import client_config, producer_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import CONFIG, DLR, INBOUND, REJECTED, topic_name

log = logging.getLogger(__name__)

STAGE = "webhooks"
BATCH = 500
IDLE_POLL_S = 0.05
COMMIT_INTERVAL_S = 1.0


@dataclass(frozen=True)
class WebhookOptions:
    group_id: str | None = None  # default <app id>-webhooks
    config_refresh_s: float = 5.0
    metrics_interval_s: float = 30.0
    drain_timeout_s: float = 10.0
    policy: WebhookRetryPolicy = field(default_factory=WebhookRetryPolicy)
    tenant_backlog: int = 1_000  # pause the tenant's partition above this many reports
    ledger_backlog: int = 20_000  # pause a partition holding this many uncommitted records


@dataclass(frozen=True)
class _Decoded:
    """What a consumed record turned into: who it is for and the bytes to POST."""

    tenant_id: str | None  # None: an MO message no tenant owns
    delivery_id: str
    body: bytes


class WebhookService:
    def __init__(
        self, settings: Settings, config: PlatformConfig, options: WebhookOptions | None = None
    ) -> None:
        self._settings = settings
        self._options = options or WebhookOptions()
        self._dlr = topic_name(settings, DLR)
        self._inbound = topic_name(settings, INBOUND)
        self._kinds: dict[str, Kind] = {self._dlr: REPORT, self._inbound: MO}
        self._rejected = topic_name(settings, REJECTED)
        self._config_topic = topic_name(settings, CONFIG)
        self.group_id = self._options.group_id or f"{settings.app_id}-webhooks"
        self._consumer = Consumer({
            **client_config(kafka_connection(settings)),
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
        })
        self._producer = Producer(producer_config(kafka_connection(settings), **{"linger.ms": 5}))
        self._set_config(config)
        self.stats_by_kind: dict[Kind, Stats] = {kind: Stats() for kind in KINDS}
        # Per topic: offsets and pauses are per partition of one topic.
        self._ledgers = {topic: AckLedger() for topic in self._kinds}
        self._backpressure = {topic: Backpressure(
            tenant_high=self._options.tenant_backlog,
            tenant_low=self._options.tenant_backlog // 2,
            ledger_high=self._options.ledger_backlog,
            ledger_low=self._options.ledger_backlog // 2,
        ) for topic in self._kinds}
        self._lanes: dict[tuple[str, Kind], Lane] = {}
        self._tasks: dict[asyncio.Task[None], tuple[Lane, WebhookJob]] = {}
        self._committed: dict[tuple[str, int], int] = {}
        self._stop_requested = threading.Event()
        self._stopping = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._last_totals: dict[str, int] = {}
        #: Read at scrape time by the metrics server's thread (connectors/webhooks/metrics.py).
        self.registry = CollectorRegistry()
        self.registry.register(WebhookCollector(
            self.stats_by_kind, lanes=lambda: list(self._lanes.values()),
            paused_partitions=lambda: sum(len(b.paused()) for b in self._backpressure.values())))

    @property
    def stats(self) -> Stats:
        """The delivery reports' counters."""
        return self.stats_by_kind[REPORT]

    @property
    def mo_stats(self) -> Stats:
        """The MO messages' counters."""
        return self.stats_by_kind[MO]

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask :meth:`run` to drain and return; safe from any thread or a signal handler."""
        self._stop_requested.set()

    def run_blocking(self) -> None:
        asyncio.run(self.run())

    async def run(self) -> None:
        self._stopping = asyncio.Event()  # bound to this loop
        self._session = new_session()
        self._consumer.subscribe(list(self._kinds), on_assign=self._on_assign,
                                 on_revoke=self._on_revoke)
        log.info("webhooks consuming %s as %s; %d tenant webhook(s) configured",
                 ", ".join(self._kinds), self.group_id, len(self._hooks))
        refresher = asyncio.create_task(self._refresh_config_loop())
        next_commit = next_metrics = time.monotonic()
        try:
            while not self._stop_requested.is_set():
                # timeout=0: never block the loop; rebalance callbacks run inside this call.
                messages = self._consumer.consume(BATCH, timeout=0)
                for message in messages:
                    await self._on_record(message)
                self._producer.poll(0)
                now = time.monotonic()
                if now >= next_commit:
                    self._commit(asynchronous=True)
                    next_commit = now + COMMIT_INTERVAL_S
                if now >= next_metrics:
                    self._log_metrics()
                    next_metrics = now + self._options.metrics_interval_s
                await asyncio.sleep(0 if messages else IDLE_POLL_S)
        finally:
            self._stopping.set()
            refresher.cancel()
            await self._drain()

    async def _drain(self) -> None:
        """Let attempts in progress end (bounded), then commit what finished and close."""
        deadline = time.monotonic() + self._options.drain_timeout_s
        while self._tasks and time.monotonic() < deadline:
            self._producer.poll(0)
            await asyncio.sleep(IDLE_POLL_S)
        leftovers = list(self._tasks)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        self._producer.flush(10)
        await asyncio.sleep(0)  # run the ack callbacks the flush scheduled, then commit
        self._commit(asynchronous=False)
        self._consumer.close()
        if self._session is not None:
            await self._session.close()
        self._log_metrics(always=True)

    # ------------------------------------------------------------------ configuration

    def _set_config(self, config: PlatformConfig) -> None:
        # One dict swap: the lookup is per report, and readers (tests, metrics) on other
        # threads see either the old or the new mapping, never a half-built one.
        hooks = _resolved_hooks(config)
        self.config = config
        self._hooks = hooks

    def webhook_of(self, tenant_id: str) -> Webhook | None:
        return self._hooks.get(tenant_id)

    async def _refresh_config_loop(self) -> None:
        while not await self._sleep_or_stop(self._options.config_refresh_s):
            try:
                config = await asyncio.to_thread(
                    read_config, kafka_connection(self._settings), self._config_topic
                )
            except Exception as exc:  # an unreadable topic must not stop deliveries
                log.warning("keeping the previous configuration: %s", exc)
                continue
            if config != self.config:
                before = self._hooks
                try:
                    self._set_config(config)
                except SecretResolutionError as exc:  # fix the mount/variable; we re-read
                    log.error("keeping the previous configuration: %s", exc)
                    continue
                after = self._hooks
                log.info("configuration changed: %d tenant webhook(s) (added %s, removed %s)",
                         len(after), sorted(set(after) - set(before)) or "none",
                         sorted(set(before) - set(after)) or "none")
                for lane in list(self._lanes.values()):
                    self._pump(lane)  # max_in_flight may have grown

    # ------------------------------------------------------------------ Kafka side

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._ledgers[tp.topic].assign(tp.partition)
            self._backpressure[tp.topic].forget(tp.partition)
            self._committed.pop((tp.topic, tp.partition), None)
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._commit(asynchronous=False, partitions=revoked)
        # Work of a revoked partition is dropped unfinished: its next owner reads it again.
        for task, (_lane, job) in list(self._tasks.items()):
            if (job.source_topic, job.ticket.partition) in revoked:
                task.cancel()
        for lane in self._lanes.values():
            kept = [job for job in lane.queue
                    if (job.source_topic, job.ticket.partition) not in revoked]
            self.stats_by_kind[lane.kind].abandoned += len(lane.queue) - len(kept)
            lane.queue.clear()
            lane.queue.extend(kept)
        for topic, partition in revoked:
            self._ledgers[topic].revoke(partition)
            self._backpressure[topic].forget(partition)
        log.info("revoked %s", sorted(revoked))

    def _commit(
        self, *, asynchronous: bool, partitions: Iterable[tuple[str, int]] | None = None
    ) -> None:
        offsets = []
        if partitions is None:
            partitions = [(topic, partition) for topic, ledger in self._ledgers.items()
                          for partition in ledger.assigned()]
        for topic, partition in partitions:
            offset = self._ledgers[topic].committable(partition)
            if offset is not None and self._committed.get((topic, partition)) != offset:
                offsets.append(TopicPartition(topic, partition, offset))
        if not offsets:
            return
        try:
            if asynchronous:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # a failed commit only means more is read again
            log.warning("offset commit failed (reports will be re-sent): %s", exc)
            return
        for tp in offsets:
            self._committed[tp.topic, tp.partition] = tp.offset

    def _apply(self, topic: str, changes: Changes) -> None:
        assigned = set(self._ledgers[topic].assigned())
        if pause := [TopicPartition(topic, p) for p in changes.pause if p in assigned]:
            self._consumer.pause(pause)
            log.warning("paused %s partition(s) %s: backlog over its bound", topic,
                        sorted(changes.pause))
        if resume := [TopicPartition(topic, p) for p in changes.resume if p in assigned]:
            self._consumer.resume(resume)
            log.info("resumed %s partition(s) %s", topic, sorted(changes.resume))

    async def _on_record(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.error("consumer error: %s", error)
            return
        topic = message.topic() or self._dlr
        kind = self._kinds.get(topic)
        if kind is None:
            log.error("record from unexpected topic %s skipped", topic)
            return
        partition, offset = message.partition() or 0, message.offset() or 0
        ticket = self._ledgers[topic].track(partition, offset)
        stats = self.stats_by_kind[kind]
        stats.received += 1
        value = message.value() or b""
        try:
            # A registry outage waits here (without blocking the loop) rather than dead-letter
            # good reports.
            decoded = await _decode(kind, value)
        except (DecodeError, ValidationError) as exc:
            stats.undecodable += 1
            code = exc.reason_code if isinstance(exc, DecodeError) else "INVALID_RECORD"
            rejection = self._rejection(code, str(exc).splitlines()[0], None, None, topic,
                                        partition, offset, value)
            self._send(rejection).add_done_callback(
                lambda sent: self._finish(topic, ticket) if sent.result() else None
            )
            return
        tenant_id = decoded.tenant_id
        if tenant_id is None or self._target(tenant_id, kind) is None:
            stats.skipped += 1
            self._finish(topic, ticket)
            return
        stamp_kind, timestamp_ms = message.timestamp()
        written_at = time.time() if stamp_kind == TIMESTAMP_NOT_AVAILABLE else timestamp_ms / 1000
        job = WebhookJob(ticket, kind, tenant_id, decoded.delivery_id, decoded.body, value, topic,
                         written_at)
        lane = self._lanes.setdefault((tenant_id, kind), Lane(tenant_id, kind))
        lane.queue.append(job)
        backpressure, ledger = self._backpressure[topic], self._ledgers[topic]
        self._apply(topic, backpressure.tenant(tenant_id, lane.backlog, partition))
        self._apply(topic, backpressure.ledger(partition, ledger.pending(partition)))
        self._pump(lane)

    def _finish(self, topic: str, ticket: AckTicket) -> None:
        ledger = self._ledgers[topic]
        if ledger.finish(ticket):  # False: the partition was revoked meanwhile
            partition = ticket.partition
            self._apply(topic, self._backpressure[topic].ledger(partition,
                                                                ledger.pending(partition)))

    def _target(self, tenant_id: str, kind: Kind) -> tuple[Webhook, str] | None:
        """The tenant's webhook and the URL this kind goes to; None: not posted."""
        webhook = self.webhook_of(tenant_id)
        if webhook is None:
            return None
        url = webhook.url if kind == REPORT else webhook.mo_target()
        return None if url is None else (webhook, url)

    # ------------------------------------------------------------------ delivery

    def _pump(self, lane: Lane) -> None:
        """Start as many of the lane's queued reports as its in-flight bound allows."""
        webhook = self.webhook_of(lane.tenant_id)
        limit = webhook.max_in_flight if webhook is not None else 1
        while lane.queue and lane.in_flight < limit and not self._stopping.is_set():
            job = lane.queue.popleft()
            lane.in_flight += 1
            task = asyncio.create_task(self._deliver(job),
                                       name=f"webhook-{lane.tenant_id}-{lane.kind}")
            self._tasks[task] = (lane, job)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        lane, job = self._tasks.pop(task)
        lane.in_flight -= 1
        if task.cancelled():
            self.stats_by_kind[job.kind].abandoned += 1
        elif (exc := task.exception()) is not None:
            # A bug, not an endpoint problem: the report stays unfinished (re-sent after a
            # restart) and holds its partition's commit, which the metrics make visible.
            log.error("delivery of %s %s failed unexpectedly", job.kind, job.delivery_id,
                      exc_info=exc)
        topic = job.source_topic
        if self._ledgers[topic].is_current(job.ticket):  # never hold a partition we lost
            self._apply(topic, self._backpressure[topic].tenant(
                lane.tenant_id, lane.backlog, job.ticket.partition))
        self._pump(lane)
        if lane.backlog == 0:
            self._lanes.pop((lane.tenant_id, lane.kind), None)  # idle tenants cost nothing

    async def _deliver(self, job: WebhookJob) -> None:
        """Attempt until delivered, refused or out of budget; returns early only on shutdown
        (the report stays unfinished and is read again)."""
        assert self._session is not None
        stats = self.stats_by_kind[job.kind]
        while True:
            target = self._target(job.tenant_id, job.kind)
            if target is None:  # removed while the report waited: as if it never had one
                stats.skipped += 1
                self._finish(job.source_topic, job.ticket)
                return
            webhook, url = target
            job.attempts += 1
            result = await post_event(
                self._session, webhook, url, job.kind, job.delivery_id, job.body, time.time()
            )
            verdict = classify(result.status)
            if verdict is Verdict.DELIVERED:
                stats.delivered += 1
                stats.delivered_by_tenant[job.tenant_id] += 1
                self._finish(job.source_topic, job.ticket)
                return
            where = urlsplit(url).hostname  # not the path: it may carry a token
            detail = f"{result.detail} from {where} after {job.attempts} attempt(s)"
            if verdict is Verdict.REJECTED:
                await self._give_up(job, "WEBHOOK_REJECTED", detail)
                return
            now = time.time()
            retry_at = self._options.policy.next_attempt_at(
                attempt=job.attempts, now=now, deadline=job.written_at + webhook.max_retry_s,
                jitter=random.random(), retry_after_s=result.retry_after_s,
            )
            if retry_at is None:
                await self._give_up(job, "WEBHOOK_GAVE_UP", detail)
                return
            stats.retried += 1
            log.debug("%s %s for %s: %s; next attempt in %.1fs", job.kind, job.delivery_id,
                      job.tenant_id, detail, retry_at - now)
            if await self._sleep_or_stop(retry_at - now):
                stats.abandoned += 1  # unfinished: read again at the next start
                return

    async def _give_up(self, job: WebhookJob, code: str, detail: str) -> None:
        ticket = job.ticket
        log.warning("%s %s %s of tenant %s: %s", code, job.kind, job.delivery_id, job.tenant_id,
                    detail)
        rejection = self._rejection(code, detail, job.delivery_id, job.tenant_id,
                                    job.source_topic, ticket.partition, ticket.offset,
                                    job.original)
        if await self._send(rejection):
            stats = self.stats_by_kind[job.kind]
            if code == "WEBHOOK_REJECTED":
                stats.rejected += 1
            else:
                stats.gave_up += 1
            self._finish(job.source_topic, ticket)

    def _rejection(
        self, code: str, detail: str, delivery_id: str | None, tenant_id: str | None, topic: str,
        partition: int, offset: int, original: bytes,
    ) -> Rejection:
        """``delivery_id`` (the report's message id, the MO's inbound id) is the rejection's
        ``message_id``: what a tenant or an operator looks the record up by."""
        return Rejection(
            reason_code=code, reason=detail, stage=STAGE,
            message_id=delivery_id, tenant_id=tenant_id,
            source_topic=topic, source_partition=partition, source_offset=offset,
            original=original, rejected_at=datetime.now(UTC),
        )

    def _send(self, rejection: Rejection) -> asyncio.Future[bool]:
        """Produce the rejection; the future says whether Kafka acknowledged it."""
        acked: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                log.error("rejection not stored (the report will be re-read): %s", error)
            if not acked.done():  # the awaiting task may have been cancelled meanwhile
                acked.set_result(error is None)

        key = rejection.tenant_id.encode() if rejection.tenant_id else None
        value = rejection.to_avro(self._rejected)
        while True:
            try:
                self._producer.produce(self._rejected, key=key, value=value,
                                       on_delivery=on_delivery)
                return acked
            except BufferError:  # local queue full: serve callbacks to make room
                self._producer.poll(0.05)

    # ------------------------------------------------------------------ helpers

    async def _sleep_or_stop(self, delay_s: float) -> bool:
        """Sleep; True if the service is stopping (then return at once)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), max(delay_s, 0.0))
        except TimeoutError:
            return False
        return True

    def _log_metrics(self, *, always: bool = False) -> None:
        totals = {f"{kind}.{name}": value for kind, stats in self.stats_by_kind.items()
                  for name, value in stats.totals().items() if value}
        if not always and totals == self._last_totals and not self._lanes:
            return  # idle: nothing moved since the last line
        self._last_totals = totals
        busy = sorted(self._lanes.values(), key=lambda lane: -lane.backlog)[:10]
        lanes = ", ".join(f"{lane.tenant_id}/{lane.kind}={lane.in_flight}/{len(lane.queue)}"
                          for lane in busy)
        paused = sorted((topic, partition) for topic, backpressure in self._backpressure.items()
                        for partition in backpressure.paused())
        log.info("webhooks: %s; in flight/queued: %s; paused partitions: %s",
                 totals or "nothing yet", lanes or "none", paused or "none")


async def _decode(kind: Kind, value: bytes) -> _Decoded:
    if kind == REPORT:
        report = await decode(DeliveryReport, value)
        return _Decoded(report.tenant_id, report.message_id, report_body(report))
    message = await decode(InboundMessage, value)
    return _Decoded(message.tenant_id, message.inbound_id, mo_body(message))


def _resolved_hooks(config: PlatformConfig) -> dict[str, Webhook]:
    """Each tenant's webhook with its signing secret resolved (it is a reference in the
    configuration: this process is the only one that reads the value)."""
    return {
        tenant.id: tenant.webhook.model_copy(update={"secret": resolve(
            tenant.webhook.secret, what=f"tenant {tenant.id} webhook secret",
            min_length=WEBHOOK_SECRET_MIN,
        )})
        for tenant in config.tenants if tenant.webhook is not None
    }
