"""Tenant webhooks: ``sms.dlr`` → a signed POST to each tenant's callback URL.

One asyncio event loop does everything, so no state needs a lock: it polls the confluent-kafka
consumer without blocking (rebalance callbacks run inside that call, on the loop's thread),
serves producer callbacks, and runs one task per report being delivered (aiohttp).

* **Never blocking other tenants.** Each tenant has its own lane (:class:`Lane`) with at most
  ``max_in_flight`` reports in delivery; a report waiting for a retry keeps its slot, nobody
  else's. Consumption goes on while a lane waits, until a tenant's backlog or a partition's
  ledger passes its bound (:mod:`backpressure`): then that partition pauses.
* **At-least-once.** A report is finished when its endpoint answered 2xx, or when its
  ``Rejection`` was acknowledged by Kafka. Offsets are committed from the ack ledger
  (:mod:`ledger`): never past an unfinished report, so a crash re-sends, never loses.
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
from connectors.webhooks.http import new_session, post_report
from connectors.webhooks.lanes import Lane, Stats, WebhookJob
from connectors.webhooks.ledger import AckLedger, AckTicket
from connectors.webhooks.metrics import WebhookCollector
from connectors.webhooks.payload import report_body
from connectors.webhooks.policy import Verdict, WebhookRetryPolicy, classify
from schemas.codec import DecodeError
from schemas.models import DeliveryReport, Rejection
from schemas.retrying import decode
from smsflow.config.kafka_io import read_config
from smsflow.config.models import WEBHOOK_SECRET_MIN, PlatformConfig, Webhook
from smsflow.config.secrets import SecretResolutionError, resolve
from smsflow.kafka_clients import producer_config
from smsflow.settings import Settings
from smsflow.topics import CONFIG, DLR, REJECTED, topic_name

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


class WebhookService:
    def __init__(
        self, settings: Settings, config: PlatformConfig, options: WebhookOptions | None = None
    ) -> None:
        self._settings = settings
        self._options = options or WebhookOptions()
        self._dlr = topic_name(settings, DLR)
        self._rejected = topic_name(settings, REJECTED)
        self._config_topic = topic_name(settings, CONFIG)
        self.group_id = self._options.group_id or f"{settings.app_id}-webhooks"
        self._consumer = Consumer({
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
        })
        self._producer = Producer(producer_config(settings.kafka_bootstrap, **{"linger.ms": 5}))
        self._set_config(config)
        self.stats = Stats()
        self._ledger = AckLedger()
        self._backpressure = Backpressure(
            tenant_high=self._options.tenant_backlog,
            tenant_low=self._options.tenant_backlog // 2,
            ledger_high=self._options.ledger_backlog,
            ledger_low=self._options.ledger_backlog // 2,
        )
        self._lanes: dict[str, Lane] = {}
        self._tasks: dict[asyncio.Task[None], tuple[Lane, WebhookJob]] = {}
        self._committed: dict[int, int] = {}
        self._stop_requested = threading.Event()
        self._stopping = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._last_totals: dict[str, int] = {}
        #: Read at scrape time by the metrics server's thread (connectors/webhooks/metrics.py).
        self.registry = CollectorRegistry()
        self.registry.register(WebhookCollector(
            self.stats, lanes=lambda: list(self._lanes.values()),
            paused_partitions=lambda: len(self._backpressure.paused())))

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask :meth:`run` to drain and return; safe from any thread or a signal handler."""
        self._stop_requested.set()

    def run_blocking(self) -> None:
        asyncio.run(self.run())

    async def run(self) -> None:
        self._stopping = asyncio.Event()  # bound to this loop
        self._session = new_session()
        self._consumer.subscribe([self._dlr], on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("webhooks consuming %s as %s; %d tenant webhook(s) configured", self._dlr,
                 self.group_id, len(self._hooks))
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
                    read_config, self._settings.kafka_bootstrap, self._config_topic
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
            self._ledger.assign(tp.partition)
            self._backpressure.forget(tp.partition)
            self._committed.pop(tp.partition, None)
        log.info("assigned %s", sorted(tp.partition for tp in partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {tp.partition for tp in partitions}
        self._commit(asynchronous=False, partitions=revoked)
        # Work of a revoked partition is dropped unfinished: its next owner reads it again.
        for task, (_lane, job) in list(self._tasks.items()):
            if job.ticket.partition in revoked:
                task.cancel()
        for lane in self._lanes.values():
            kept = [job for job in lane.queue if job.ticket.partition not in revoked]
            self.stats.abandoned += len(lane.queue) - len(kept)
            lane.queue.clear()
            lane.queue.extend(kept)
        for partition in revoked:
            self._ledger.revoke(partition)
            self._backpressure.forget(partition)
        log.info("revoked %s", sorted(revoked))

    def _commit(self, *, asynchronous: bool, partitions: Iterable[int] | None = None) -> None:
        offsets = []
        for partition in partitions if partitions is not None else self._ledger.assigned():
            offset = self._ledger.committable(partition)
            if offset is not None and self._committed.get(partition) != offset:
                offsets.append(TopicPartition(self._dlr, partition, offset))
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
            self._committed[tp.partition] = tp.offset

    def _apply(self, changes: Changes) -> None:
        assigned = set(self._ledger.assigned())
        if pause := [TopicPartition(self._dlr, p) for p in changes.pause if p in assigned]:
            self._consumer.pause(pause)
            log.warning("paused %s partition(s) %s: backlog over its bound", self._dlr,
                        sorted(changes.pause))
        if resume := [TopicPartition(self._dlr, p) for p in changes.resume if p in assigned]:
            self._consumer.resume(resume)
            log.info("resumed %s partition(s) %s", self._dlr, sorted(changes.resume))

    async def _on_record(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.error("consumer error: %s", error)
            return
        partition, offset = message.partition() or 0, message.offset() or 0
        ticket = self._ledger.track(partition, offset)
        self.stats.received += 1
        value = message.value() or b""
        try:
            # A registry outage waits here (without blocking the loop) rather than dead-letter
            # good reports.
            report = await decode(DeliveryReport, value)
        except (DecodeError, ValidationError) as exc:
            self.stats.undecodable += 1
            code = exc.reason_code if isinstance(exc, DecodeError) else "INVALID_RECORD"
            rejection = self._rejection(code, str(exc).splitlines()[0], None, message.topic()
                                        or self._dlr, partition, offset, value)
            self._send(rejection).add_done_callback(
                lambda sent: self._finish(ticket) if sent.result() else None
            )
            return
        if self.webhook_of(report.tenant_id) is None:
            self.stats.skipped += 1
            self._finish(ticket)
            return
        kind, timestamp_ms = message.timestamp()
        written_at = time.time() if kind == TIMESTAMP_NOT_AVAILABLE else timestamp_ms / 1000
        job = WebhookJob(ticket, report, report_body(report), value, message.topic() or self._dlr,
                  written_at)
        lane = self._lanes.setdefault(report.tenant_id, Lane(report.tenant_id))
        lane.queue.append(job)
        self._apply(self._backpressure.tenant(lane.tenant_id, lane.backlog, partition))
        self._apply(self._backpressure.ledger(partition, self._ledger.pending(partition)))
        self._pump(lane)

    def _finish(self, ticket: AckTicket) -> None:
        if self._ledger.finish(ticket):  # False: the partition was revoked meanwhile
            partition = ticket.partition
            self._apply(self._backpressure.ledger(partition, self._ledger.pending(partition)))

    # ------------------------------------------------------------------ delivery

    def _pump(self, lane: Lane) -> None:
        """Start as many of the lane's queued reports as its in-flight bound allows."""
        webhook = self.webhook_of(lane.tenant_id)
        limit = webhook.max_in_flight if webhook is not None else 1
        while lane.queue and lane.in_flight < limit and not self._stopping.is_set():
            job = lane.queue.popleft()
            lane.in_flight += 1
            task = asyncio.create_task(self._deliver(job), name=f"webhook-{lane.tenant_id}")
            self._tasks[task] = (lane, job)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        lane, job = self._tasks.pop(task)
        lane.in_flight -= 1
        if task.cancelled():
            self.stats.abandoned += 1
        elif (exc := task.exception()) is not None:
            # A bug, not an endpoint problem: the report stays unfinished (re-sent after a
            # restart) and holds its partition's commit, which the metrics make visible.
            log.error("delivery of %s failed unexpectedly", job.report.message_id, exc_info=exc)
        if self._ledger.is_current(job.ticket):  # never hold a partition we no longer own
            self._apply(
                self._backpressure.tenant(lane.tenant_id, lane.backlog, job.ticket.partition)
            )
        self._pump(lane)
        if lane.backlog == 0:
            self._lanes.pop(lane.tenant_id, None)  # idle tenants cost nothing

    async def _deliver(self, job: WebhookJob) -> None:
        """Attempt until delivered, refused or out of budget; returns early only on shutdown
        (the report stays unfinished and is read again)."""
        assert self._session is not None
        report = job.report
        while True:
            webhook = self.webhook_of(report.tenant_id)
            if webhook is None:  # removed while the report waited: as if it never had one
                self.stats.skipped += 1
                self._finish(job.ticket)
                return
            job.attempts += 1
            result = await post_report(
                self._session, webhook, report.message_id, job.body, time.time()
            )
            verdict = classify(result.status)
            if verdict is Verdict.DELIVERED:
                self.stats.delivered += 1
                self.stats.delivered_by_tenant[report.tenant_id] += 1
                self._finish(job.ticket)
                return
            where = urlsplit(webhook.url).hostname  # not the path: it may carry a token
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
            self.stats.retried += 1
            log.debug("%s for %s: %s; next attempt in %.1fs", report.message_id,
                      report.tenant_id, detail, retry_at - now)
            if await self._sleep_or_stop(retry_at - now):
                self.stats.abandoned += 1  # unfinished: read again at the next start
                return

    async def _give_up(self, job: WebhookJob, code: str, detail: str) -> None:
        report, ticket = job.report, job.ticket
        log.warning("%s %s of tenant %s: %s", code, report.message_id, report.tenant_id, detail)
        rejection = self._rejection(code, detail, report, job.source_topic, ticket.partition,
                                    ticket.offset, job.original)
        if await self._send(rejection):
            if code == "WEBHOOK_REJECTED":
                self.stats.rejected += 1
            else:
                self.stats.gave_up += 1
            self._finish(job.ticket)

    def _rejection(
        self, code: str, detail: str, report: DeliveryReport | None, topic: str, partition: int,
        offset: int, original: bytes,
    ) -> Rejection:
        return Rejection(
            reason_code=code, reason=detail, stage=STAGE,
            message_id=report.message_id if report else None,
            tenant_id=report.tenant_id if report else None,
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
        totals = self.stats.totals()
        if not always and totals == self._last_totals and not self._lanes:
            return  # idle: nothing moved since the last line
        self._last_totals = totals
        busy = sorted(self._lanes.values(), key=lambda lane: -lane.backlog)[:10]
        lanes = ", ".join(f"{lane.tenant_id}={lane.in_flight}/{len(lane.queue)}" for lane in busy)
        paused = sorted(self._backpressure.paused())
        log.info("webhooks: %s; in flight/queued: %s; paused partitions: %s",
                 totals, lanes or "none", paused or "none")


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
