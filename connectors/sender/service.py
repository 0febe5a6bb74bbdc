"""SMPP sender: ``sms.throttled`` → SMSCs → ``sms.sent``; receipts → ``sms.dlr.raw``.

Threading model (blocking sockets, so no asyncio here; docs/architecture.md#sender):
- the main thread consumes Kafka in batches, decodes, plans and encodes the parts
  (``SmppClient.prepare``) and appends them to the queue of the record's SMSC. It never waits
  for an SMSC: back-pressure pauses the consumer's partitions while too many parts are queued
  (``PartitionGate``: only the partitions an SMSC over its bound reads from);
- each SMSC's dispatcher thread (``dispatch.SmscDispatcher``) moves its queue, in order, into
  the windows of that SMSC's binds, many submit_sm per socket write; a full window on one SMSC
  only holds that SMSC's queue;
- each bind's session thread reports submit results and receipts through callbacks, which only
  hand records to Kafka (thread-safe; outcomes and receipts held a few ms to go as one record
  per partition: ``outcome_batches``, ``receipt_batches``) and update job state under one
  lock; a receipt is acknowledged
  to the SMSC (``deliver_sm_resp``) only from the delivery report of its record, so a crash
  before Kafka stored it leaves it unacknowledged and the SMSC delivers it again;
- a producer-poll thread serves the delivery reports as soon as they arrive (offsets become
  committable, receipts get acknowledged) instead of once per consumer round;
- a retry thread re-enqueues parts the SMSC asked us to slow down for, after a backoff.

Nothing is lost: a record's offset is committed only after every part's final outcome has been
acknowledged by Kafka (``OffsetTracker``), so a crash replays unfinished records; one Kafka
refuses is produced again until stored, consumption paused meanwhile (``StoreRetry``). Nothing is
submitted twice beyond the in-flight window: the submit ledger (``connectors/sender/ledger.py``)
stores an intent per part before its PDU is written, and a DONE once its outcome is on
``sms.sent``; a replayed or re-sent record skips the parts the ledger has, and resubmits only
the parts in doubt (intent, no outcome), which it reports.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from pydantic import ValidationError

from connectors.sender.back_pressure import PartitionGate, PartitionPauser
from connectors.sender.bind_reports import BindReporter, instance_name
from connectors.sender.config_refresh import ConfigRefresh
from connectors.sender.connections import SmscConnections
from connectors.sender.deliveries import STAGE, Deliveries
from connectors.sender.dispatch import Entry, SmscDispatcher
from connectors.sender.inbound import InboundClassifier
from connectors.sender.jobs import SubmitJob
from connectors.sender.ledger import PartAction
from connectors.sender.ledger_store import SubmitLedger
from connectors.sender.metrics import COUNTER_KEYS, BindView, SenderCollector, SenderMetrics
from connectors.sender.offsets import OffsetTracker
from connectors.sender.outcome_batches import OutcomeBatcher
from connectors.sender.relay import RELAYED_HEADER
from connectors.sender.retry import RetryKind, SubmitRetryPolicy
from connectors.sender.routing_view import RoutingView, failed_over
from connectors.sender.store_retry import StoreRetry
from connectors.smpp.client import SmppClient, SubmitOptions
from connectors.smpp.models import SubmitResult
from connectors.smpp.submit_pdus import source_ton_npi
from schemas.batches import sent_key
from schemas.codec import DecodeError
from schemas.models import (
    Rejection,
    RoutedMessage,
    SubmitOutcome,
    SubmitStatus,
)
from schemas.retrying import decode_blocking
from schemas.summaries import sent_summary_header
from smsflow.config.kafka_io import read_config
from smsflow.config.models import PlatformConfig, Smsc
from smsflow.domain import route_engine
from smsflow.domain.encoding import SegmentPlan, plan_segments
from smsflow.domain.receipts import IdFormat, normalize_message_id
from smsflow.domain.smpp_status import StatusCategory, status_name
from smsflow.kafka_clients import client_config, producer_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import (
    CONFIG,
    DLR_RAW,
    REJECTED,
    ROUTE_HEALTH,
    ROUTED,
    SENDER_LEDGER,
    SENT,
    SMSC_BINDS,
    THROTTLED,
    topic_name,
)

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 0.5
COUNTERS_LOG_INTERVAL_S = 60.0
CONSUME_BATCH = 500  # records taken from Kafka per consumer round
POLL_TIMEOUT_S = 0.1  # the consumer's wait for the first record of a round
#: Bind state reaches sms.smsc-binds at most this much later (route health waits a 10 s grace).
BIND_REPORT_INTERVAL_S = 0.1
BIND_WAIT_S = 0.5  # re-check interval while an SMSC has no bound connection
FAILOVER_AFTER_S = 10.0  # an SMSC without a bound connection this long: fail over its traffic
_NO_RESPONSE = -1
#: How long the sender remembers ledger entries (and reads back on assignment): a replay after
#: a crash or a worker re-send is minutes old; memory is the traffic of an hour, ~340 B a part.
LEDGER_HORIZON_MS = 3_600_000
#: How long a batch waits for its intents to be stored before it is put back in the queue.
INTENT_ACK_TIMEOUT_S = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


class SenderService:
    def __init__(
        self,
        settings: Settings,
        config: PlatformConfig,
        *,
        policy: SubmitRetryPolicy | None = None,
        group_id: str | None = None,
        metrics: SenderMetrics | None = None,
    ) -> None:
        self._settings = settings
        #: Per-event instruments; its registry also holds the scrape-time collector.
        self.metrics = metrics if metrics is not None else SenderMetrics()
        self._policy = policy or SubmitRetryPolicy()
        self._throttled = topic_name(settings, THROTTLED)
        self._sent = topic_name(settings, SENT)
        self._rejected = topic_name(settings, REJECTED)
        self._consumer = Consumer(
            {
                **client_config(kafka_connection(settings)),
                "group.id": group_id or f"{settings.app_id}-sender",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "max.poll.interval.ms": 300000,
                # Fewer, fuller fetches at load (docs/performance.md#fetch-batching).
                "fetch.min.bytes": settings.fetch_min_bytes,
                "fetch.wait.max.ms": settings.fetch_max_wait_ms,
            }
        )
        self._producer = Producer(
            producer_config(kafka_connection(settings), **{"linger.ms": settings.sender_linger_ms})
        )
        self._smscs: dict[str, Smsc] = {smsc.id: smsc for smsc in config.smscs}
        self._instance = instance_name()
        self._connections = SmscConnections(
            settings, self._new_dispatcher,
            lambda config, dispatcher: SmppClient(config, on_deliver=self.deliveries.on_deliver,
                                                  on_room=dispatcher.wake),
            instance=self._instance)
        self._pools = self._connections.pools
        # Parts queued for the SMSCs (not yet in a window) at which partitions pause.
        self._gate = PartitionGate(per_smsc_limit=settings.sender_max_queued_parts_per_smsc,
                                   total_limit=settings.sender_max_queued_parts)
        self._pauser = PartitionPauser(self._consumer, self._throttled, self._gate)
        self._lock = threading.Lock()
        self._tracker = OffsetTracker()
        self._epochs: dict[int, int] = {}
        self._retries: list[tuple[float, int, SubmitJob, SegmentPlan]] = []
        self._retry_wakeup = threading.Condition(self._lock)
        self._retry_seq = itertools.count()
        self._references = itertools.count()
        self._stop = threading.Event()
        self._config_refresh = ConfigRefresh(lambda: read_config(
            kafka_connection(settings), topic_name(settings, CONFIG)))
        # Failover decides with what the routers see now: routes enabled, and their health.
        self._view = RoutingView(kafka_connection(settings), topic_name(settings, CONFIG),
                                 topic_name(settings, ROUTE_HEALTH), config)
        self._view_version = self._view.current.version
        self._routed_topic = topic_name(settings, ROUTED)
        self._poller_stop = threading.Event()
        # Outcomes, rejections, successors and DONEs: produced again until stored.
        self.stats: dict[str, int] = dict.fromkeys(COUNTER_KEYS, 0)  # exported as counters
        self._store = StoreRetry(self._produce, self._poller_stop.is_set, self.stats)
        self._ledger = SubmitLedger(kafka_connection(settings), topic_name(settings, SENDER_LEDGER),
                                    self._produce, LEDGER_HORIZON_MS,
                                    produce_stored=self._store.produce)
        #: Outcomes go to sms.sent in batches per partition (run() tells it the partitions).
        self._outcomes = OutcomeBatcher(self._store.produce, self._sent,
                                        delay_s=settings.sent_batch_ms / 1000)
        self._last_bound: dict[str, float] = {}
        # Resolved once (AvroModel.to_avro looks the registry setting up in the environment
        # for every record).
        self._outcome_codec = SubmitOutcome.codec()
        #: Receipts and MO from the SMSCs (session threads).
        self.deliveries = Deliveries(settings, config, self._smscs, self._produce, self.metrics,
                                     self.stats)
        #: stop(): how long to let in-flight records finish before closing (then replayed).
        self.drain_timeout_s = 15.0
        self.last_round, self.joined = time.monotonic(), False
        self._bind_reporter = BindReporter.on(self._producer, topic_name(settings, SMSC_BINDS),
                                              instance=self._instance)
        self.metrics.registry.register(SenderCollector(
            binds=self.bind_views, queued_parts=self.queued_parts_by_smsc,
            counters=lambda: {**self.stats, "routing_view_failures": self._view.failures}))

    # ------------------------------------------------------------------ lifecycle

    @property
    def routing_view(self) -> RoutingView:
        """What failover decides with (``caught_up`` once it read both topics)."""
        return self._view

    def _follow_view(self) -> None:
        """Adopt a configuration the routing view read since the last look (one int compared
        per consumer round)."""
        view = self._view.current
        if view.version != self._view_version:
            self._view_version = view.version
            self._adopt(view.config)

    def _refresh_config(self, smsc_id: str) -> None:
        """A record names ``smsc_id``, which has no connection: the routing view's latest
        configuration, or if that does not have it either (the view reads a moment behind the
        routers), a read of ``sms.config`` now. A read that fails keeps the configuration
        (connectors/sender/config_refresh.py)."""
        self._follow_view()
        if smsc_id in self._pools:
            return
        config = self._config_refresh.fresh()
        self.stats["config_read_failures"] = self._config_refresh.failures
        if config is not None:
            self._adopt(config)

    def _adopt(self, config: PlatformConfig) -> None:
        """Open binds to SMSCs added since start (a route may already point at one) and
        classify MO by the tenants' current numbers. Changed settings of an SMSC already bound
        need a restart of the sender (documented)."""
        self.deliveries.classifier = InboundClassifier(config)
        added = [smsc for smsc in config.smscs if smsc.id not in self._smscs]
        for smsc in added:
            self._smscs[smsc.id] = smsc
        self._connections.add(added)
        if added:
            log.info("opened binds to new SMSCs: %s", ", ".join(s.id for s in added))

    def _new_dispatcher(self, smsc: Smsc) -> SmscDispatcher[tuple[SubmitJob, SegmentPlan]]:
        smsc_id = smsc.id
        self._last_bound[smsc_id] = time.monotonic()  # failover counts from here until bound

        def on_no_bind(entries: list[Entry[tuple[SubmitJob, SegmentPlan]]]) -> None:
            for entry in entries:
                job, plan = entry.context
                if not self._stale(job):
                    self._wait_for_bind(job, plan)

        def on_bound() -> None:
            self._last_bound[smsc_id] = time.monotonic()

        def on_taken(context: tuple[SubmitJob, SegmentPlan]) -> None:
            context[0].attempts += 1

        def on_returned(context: tuple[SubmitJob, SegmentPlan]) -> None:
            context[0].attempts -= 1

        return SmscDispatcher(
            smsc_id, [], smsc.window, on_no_bind=on_no_bind,
            is_stale=lambda context: self._stale(context[0]), on_taken=on_taken,
            on_returned=on_returned, on_bound=on_bound, before_send=self._write_intents,
            partition_of=lambda context: context[0].partition,
        )

    def _write_intents(self, contexts: list[tuple[SubmitJob, SegmentPlan]]) -> bool:
        """The batch's intents, stored before its PDUs are written (dispatcher thread)."""
        return self._ledger.write_intents(
            ((job.key, segment.seq - 1, job.partition, plan.reference or 0)
             for job, plan in contexts for segment in plan.segments),
            INTENT_ACK_TIMEOUT_S,
        )

    def _stale(self, job: SubmitJob) -> bool:
        """The job's partition was revoked since it was read: its next owner replays it."""
        return self._epochs.get(job.partition) != job.epoch

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._retry_wakeup.notify_all()

    def run(self) -> None:
        self._require_ledger_topic()
        self.deliveries.receipts.use_partitions(self._partition_count(topic_name(
            self._settings, DLR_RAW)))
        self._outcomes.use_partitions(self._partition_count(self._sent))
        self._connections.add(self._smscs.values())
        self._view.start()
        retry_thread = threading.Thread(target=self._retry_loop, name="sender-retry", daemon=True)
        retry_thread.start()
        poll_thread = threading.Thread(target=self._poll_loop, name="sender-producer-poll",
                                       daemon=True)
        poll_thread.start()
        self._consumer.subscribe(
            [self._throttled], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        log.info("sender consuming %s with %d SMSC connections", self._throttled,
                 sum(len(pool.clients) for pool in self._pools.values()))
        last_commit = last_counters = last_bind_report = time.monotonic()
        try:
            while not self._stop.is_set():
                self.last_round = time.monotonic()  # liveness (connectors/sender/probe.py)
                self._follow_view()
                # Wait for the first record, then take whatever else is ready: batches under
                # load, no added latency when idle.
                first = self._consumer.poll(POLL_TIMEOUT_S)
                if first is not None:
                    self._on_record(first)
                    # Never take more than the queue bound has room for (>= 1 record).
                    more = min(CONSUME_BATCH, self._gate.room(self.queued_parts_by_smsc())) - 1
                    if more > 0:
                        for message in self._consumer.consume(more, 0):
                            self._on_record(message)
                self._apply_back_pressure()
                if time.monotonic() - last_bind_report >= BIND_REPORT_INTERVAL_S:
                    # Not every round: at moderate rates a round is one record, and the views
                    # cost O(binds) (~50 us per round for 200 binds in the reporter alone).
                    self._bind_reporter.report(self.bind_views(), time.time(),
                                               sorted(self._pauser.assigned))
                    last_bind_report = time.monotonic()
                if time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
                    self._commit(asynchronous=True)
                    self._ledger.prune(int(time.time() * 1000))  # memory: the last hour only
                    last_commit = time.monotonic()
                if time.monotonic() - last_counters >= COUNTERS_LOG_INTERVAL_S:
                    # Also on /metrics (smsflow_sender_*); the log keeps a trail for
                    # deployments that do not scrape.
                    log.info("sender counters: %s", self.stats)
                    last_counters = time.monotonic()
        finally:
            self._drain()

    def _require_ledger_topic(self) -> None:
        """Without its ledger topic the sender could store no intent, so it would submit
        nothing: say so at once (an upgrade that skipped ``smsflow topics apply``)."""
        if self._partition_count(self._ledger.topic) is None:
            raise RuntimeError(
                f"topic {self._ledger.topic} is missing: run `smsflow topics apply` first")

    def _partition_count(self, topic: str) -> int | None:
        """Partitions of ``topic`` in the cluster's metadata; None when it has none yet."""
        found = self._consumer.list_topics(topic, timeout=30).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        return len(found.partitions)

    def queued_parts(self) -> int:
        """Parts waiting in the SMSC queues (not yet in a window)."""
        return sum(pool.dispatcher.queued_parts for pool in list(self._pools.values()))

    def queued_parts_by_smsc(self) -> dict[str, int]:
        return {smsc: pool.dispatcher.queued_parts for smsc, pool in list(self._pools.items())}

    def bind_views(self) -> list[BindView]:
        """State, window and counters of every bind (read at scrape time, any thread)."""
        return self._connections.views()

    def _apply_back_pressure(self) -> None:
        def by_partition() -> dict[str, dict[int, int]]:
            return {smsc: pool.dispatcher.queued_by_partition()
                    for smsc, pool in list(self._pools.items())}

        # A record Kafka refused holds its commit: take no new work until it is stored.
        if self._pauser.apply(self.queued_parts_by_smsc(), by_partition,
                              hold_all=self._store.waiting() > 0):
            self.stats["pauses"] += 1

    def _drain(self) -> None:
        """Let in-flight work finish, then commit what is safe and close everything."""
        deadline = time.monotonic() + self.drain_timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                busy = self._tracker.in_flight()
            if not busy:
                break
            self._producer.poll(0.1)
            self._ledger.flush_done()
        self._outcomes.stop()  # before the poller stops: held outcomes are stored, then DONE
        # Held receipts are written while their SMSC connections can still be answered.
        self.deliveries.receipts.stop()
        self._connections.close()
        self._view.stop()
        self._bind_reporter.withdraw()  # flushed below with everything else
        self._producer.flush(10)
        if self._ledger.flush_done():  # outcomes stored during that flush: their DONEs too
            self._producer.flush(10)
        self._poller_stop.set()
        self._commit(asynchronous=False)
        self._consumer.close()
        with self._lock:
            self._retry_wakeup.notify_all()

    def _poll_loop(self) -> None:
        """Serve producer delivery reports as they arrive: receipts are acknowledged to the
        SMSC from them (a late report holds the SMSC's receipt window), and the offsets of
        finished records become committable.  ``poll`` returns as soon as a report is ready."""
        while not self._poller_stop.is_set():
            try:
                self._producer.poll(0.05)
                # The DONEs of the outcomes this round stored, in one record per partition.
                self._ledger.flush_done()
                self._store.run_due(time.monotonic())
            except Exception:  # a failing callback must not stop the reports of the others
                log.exception("producer delivery callback failed")

    # ------------------------------------------------------------------ Kafka side

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.joined = True  # readiness: in the group (possibly with no partition)
        # A new assignment starts unpaused; re-paused if still over.
        self._pauser.assign([tp.partition for tp in partitions])
        started = time.monotonic()
        loaded = self._ledger.load([tp.partition for tp in partitions], int(time.time() * 1000))
        log.info("sender ledger: %d entries of partitions %s read in %.1fs", loaded,
                 [tp.partition for tp in partitions], time.monotonic() - started)
        with self._lock:
            for tp in partitions:
                self._epochs[tp.partition] = self._epochs.get(tp.partition, 0) + 1

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit(asynchronous=False)
        with self._lock:
            for tp in partitions:
                # Unfinished records will be redelivered to the partition's next owner.
                self._tracker.forget(tp.partition)
                self._epochs[tp.partition] = self._epochs.get(tp.partition, 0) + 1
        self._ledger.forget({tp.partition for tp in partitions})
        self._pauser.revoke([tp.partition for tp in partitions])

    def _commit(self, *, asynchronous: bool) -> None:
        with self._lock:
            offsets = [
                TopicPartition(self._throttled, partition, offset)
                for partition in self._epochs
                if (offset := self._tracker.committable(partition)) is not None
            ]
        if offsets:
            try:
                if asynchronous:
                    self._consumer.commit(offsets=offsets, asynchronous=True)
                else:
                    self._consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:  # commit failure only means a replay; log it
                log.warning("offset commit failed (records will be replayed): %s", exc)

    def _on_record(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.error("consumer error: %s", error)
            return
        partition, offset = message.partition() or 0, message.offset() or 0
        with self._lock:
            self._tracker.started(partition, offset)
            epoch = self._epochs.get(partition, 0)
        value = message.value()
        try:
            routed = decode_blocking(RoutedMessage, value)
        except (DecodeError, ValidationError) as exc:
            code = exc.reason_code if isinstance(exc, DecodeError) else "INVALID_RECORD"
            self._reject(message, code, str(exc).splitlines()[0], partition, offset, epoch)
            return
        if routed.smsc_id not in self._pools:
            self._refresh_config(routed.smsc_id)
        if routed.smsc_id not in self._pools:
            detail = f"no connection configured for {routed.smsc_id}"
            if self._config_refresh.problem is not None:
                detail += f" (the configuration could not be read: {self._config_refresh.problem})"
            self._reject(message, "UNKNOWN_SMSC", detail, partition, offset, epoch, routed)
            return
        self.stats["messages"] += 1
        self._start(routed, partition, offset, epoch)

    def _start(self, routed: RoutedMessage, partition: int, offset: int, epoch: int) -> None:
        """Plan the message and submit the parts the ledger does not know as submitted."""
        message_id = routed.request.message_id
        actions, first_reference = self._ledger.actions(message_id, routed.parts)
        # A resubmitted part keeps its first attempt's concatenation reference.
        reference = next(self._references) % 256 if first_reference is None else first_reference
        plan = plan_segments(routed.request.body, reference)
        seqs = [s.seq for s in plan.segments if actions[s.seq - 1] is not PartAction.SKIP]
        in_doubt = frozenset(s.seq for s in plan.segments
                             if actions[s.seq - 1] is PartAction.RESUBMIT_IN_DOUBT)
        job = SubmitJob(routed, partition, offset, epoch, plan,
                  skipped=len(plan.segments) - len(seqs), in_doubt=in_doubt)
        if job.skipped:
            self.stats["parts_skipped"] += job.skipped
            log.info("%s: %d of %d part(s) already submitted (ledger): not resubmitted",
                     message_id, job.skipped, len(plan.segments))
        if in_doubt:
            self.stats["in_doubt_resubmits"] += len(in_doubt)
            log.warning("%s: part(s) %s in doubt (intent stored, no outcome before a crash or "
                        "rebalance): resubmitting; the subscriber may get them twice",
                        message_id, sorted(s - 1 for s in in_doubt))
        if not seqs:
            self._finish(partition, offset, epoch)
            return
        self._ledger.claim(message_id, (seq - 1 for seq in seqs), partition)
        self._submit(job, plan.select(seqs))

    def _reject(
        self, message: Message, code: str, detail: str, partition: int, offset: int, epoch: int,
        routed: RoutedMessage | None = None,
    ) -> None:
        rejection = Rejection(
            reason_code=code, reason=detail, stage=STAGE,
            message_id=routed.request.message_id if routed else None,
            tenant_id=routed.request.tenant_id if routed else None,
            source_topic=message.topic() or self._throttled, source_partition=partition,
            source_offset=offset, original=message.value(), rejected_at=_now(),
        )
        self.stats["rejected"] += 1
        self.metrics.rejected(code)

        def acked(error: KafkaError | None, _msg: Message) -> None:
            if error is None:  # else stopping: the record will be replayed
                self._finish(partition, offset, epoch)

        self._store.produce(self._rejected, rejection.tenant_id,
                            rejection.to_avro(self._rejected), acked)

    def _produce(
        self, topic: str, key: str | None, value: bytes,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
        partition: int | None = None,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, key=key.encode() if key else None, value=value, on_delivery=on_delivery,
                    headers=headers, partition=-1 if partition is None else partition,
                )
                return
            except BufferError:
                self._producer.poll(0.05)

    def _finish(self, partition: int, offset: int, epoch: int) -> None:
        with self._lock:
            if self._epochs.get(partition) == epoch:
                self._tracker.finished(partition, offset)

    # ------------------------------------------------------------------ SMPP side

    def _submit(self, job: SubmitJob, plan: SegmentPlan) -> None:
        """Encode the parts and queue them for the SMSC's dispatcher; never waits. A
        dispatcher without a bound connection hands them back to ``_wait_for_bind``."""
        request = job.routed.request
        pool = self._pools[job.routed.smsc_id]
        ton, npi = source_ton_npi(request.source)
        try:
            prepared = pool.prepare(
                job.key, plan,
                source_addr=request.source.removeprefix("+"),
                destination_addr=job.routed.destination.removeprefix("+"),
                # A receipt unless the request declines one (its report is then ACCEPTED).
                options=SubmitOptions(
                    registered_delivery=1 if request.registered_delivery else 0,
                    source_addr_ton=ton, source_addr_npi=npi,
                ),
                callback=lambda result: self._on_result(job, plan, result),
            )
        except ValueError as exc:
            # A field the SMSC cannot take (e.g. an over-long sender id): fail, do not crash.
            self._fail_parts(job, [s.seq for s in plan.segments], _NO_RESPONSE,
                             f"not submittable: {exc}", 0.0)
            return
        pool.dispatcher.put(Entry((job, plan), prepared))

    def _wait_for_bind(self, job: SubmitJob, plan: SegmentPlan) -> None:
        """No bind can take the parts now: pass the message to a sender holding a bind slot of
        its SMSC (bind leases), or try again shortly, until the message expires."""
        request = job.routed.request
        if len(plan.segments) == job.routed.parts and not job.outcomes:
            partition = self._connections.relay_partition(job.routed.smsc_id, job.key)
            if partition is not None:
                self._relay(job, partition)
                return
        expires_at = request.submitted_at + timedelta(
            seconds=request.validity_s or self._settings.default_validity_s
        )
        if _now() >= expires_at:
            self._fail_parts(job, [s.seq for s in plan.segments], _NO_RESPONSE,
                             f"no bind to {job.routed.smsc_id} before the validity expired", 0.0)
            return
        down_for = time.monotonic() - self._last_bound.get(job.routed.smsc_id, 0.0)
        if down_for >= FAILOVER_AFTER_S and len(plan.segments) == job.routed.parts:
            reason = f"{job.routed.smsc_id} unreachable for {down_for:.0f}s"
            if self._fail_over(job, reason):
                return
        self._schedule(job, plan, BIND_WAIT_S)

    def _fail_over(self, job: SubmitJob, why: str) -> bool:
        """Send the whole message back through the throttle on the next eligible route.

        Only for messages of which no part was accepted (a split across SMSCs would still
        reassemble on the handset, but bills and tracks badly). Returns False when no other
        route is eligible; the caller then fails the parts as before."""
        rerouted = failed_over(self._view.current.engine, job.routed, _now())
        if isinstance(rerouted, route_engine.RouteRejection):
            if not job.routes_exhausted:  # a message waiting for a bind asks every 0.5 s
                job.routes_exhausted = True
                self.stats["routes_exhausted"] += 1
                log.warning("no route left for %s after %s: %s", job.key, why, rerouted.detail)
            return False
        self.stats["failovers"] += 1
        self._ledger.release(job.key, job.routed.parts)
        log.info("failing %s over from %s to %s: %s", job.key, job.routed.route_id,
                 rerouted.route_id, why)
        self._store.produce(self._routed_topic, rerouted.route_id,
                            rerouted.to_avro(self._routed_topic), self._finish_when_stored(job))
        return True

    def _relay(self, job: SubmitJob, partition: int) -> None:
        """This process holds no bind slot of the message's SMSC: write it to the sms.throttled
        partition of a sender that does (connectors/sender/relay.py)."""
        self.stats["relayed"] += 1
        self._ledger.release(job.key, job.routed.parts)
        self._store.produce(self._throttled, job.routed.route_id,
                            job.routed.to_avro(self._throttled), self._finish_when_stored(job),
                            headers=[(RELAYED_HEADER, self._instance)], partition=partition)

    def _finish_when_stored(self, job: SubmitJob) -> Callable[[KafkaError | None, Message], None]:
        """A delivery callback: the job's record is done once Kafka stored its successor."""
        def acked(error: KafkaError | None, _msg: Message) -> None:
            if error is None:  # else stopping: the record will be replayed
                self._finish(job.partition, job.offset, job.epoch)
        return acked

    def _schedule(self, job: SubmitJob, plan: SegmentPlan, delay_s: float) -> None:
        with self._lock:
            heapq.heappush(
                self._retries, (time.monotonic() + delay_s, next(self._retry_seq), job, plan)
            )
            self._retry_wakeup.notify()

    def _fail_parts(
        self, job: SubmitJob, seqs: list[int], status: int, reason: str, latency_s: float
    ) -> None:
        now = _now()
        for seq in seqs:
            self.stats["parts_failed"] += 1
            self._record(job, seq, SubmitStatus.FAILED, status, None, latency_s, reason, now)

    def _on_result(self, job: SubmitJob, plan: SegmentPlan, result: SubmitResult) -> None:
        smsc = self._smscs[job.routed.smsc_id]
        now = _now()
        for part in result.parts:
            self.metrics.observe_part(smsc.id, part)
            if part.ok:
                self.stats["parts_accepted"] += 1
                self._record(job, part.seq, SubmitStatus.ACCEPTED, 0,
                             normalize_message_id(part.smsc_message_id or "",
                                                  IdFormat(smsc.submit_id_format)),
                             part.latency_s, None, now)
        if result.ok:  # every part accepted (the result's category is its worst part's)
            return
        failed = result.failed_parts
        if not failed:
            return
        kind = (
            RetryKind.PERMANENT if result.category is StatusCategory.PERMANENT
            else RetryKind.BACKPRESSURE
            if result.category is StatusCategory.BACKPRESSURE or result.connection_lost
            else RetryKind.TEMPORARY
        )
        if kind is RetryKind.PERMANENT and not job.outcomes and len(failed) == job.routed.parts:
            if self._fail_over(job, f"{result.status_name} from {job.routed.smsc_id}"):
                return
        delay = self._policy.next_delay(kind, job.attempts)
        if delay is None:
            status = result.command_status if result.command_status is not None else _NO_RESPONSE
            reason = f"{result.status_name} after {job.attempts} attempt(s)"
            self._fail_parts(job, list(failed), status, reason, result.latency_s)
            return
        self.stats["retries"] += 1
        self._schedule(job, plan.select(failed), delay)

    def _retry_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while not self._stop.is_set() and (
                    not self._retries or self._retries[0][0] > time.monotonic()
                ):
                    timeout = self._retries[0][0] - time.monotonic() if self._retries else None
                    self._retry_wakeup.wait(timeout)
                if self._stop.is_set():
                    return
                _, _, job, plan = heapq.heappop(self._retries)
            self._submit(job, plan)

    def _record(
        self, job: SubmitJob, seq: int, outcome: SubmitStatus, command_status: int,
        smsc_message_id: str | None, latency_s: float, reason: str | None, now: datetime,
    ) -> None:
        routed, request = job.routed, job.routed.request
        validity = timedelta(seconds=request.validity_s or self._settings.default_validity_s)
        latency_ms = latency_s * 1000
        # The SubmitOutcome's fields, encoded without building the model: every value is typed
        # here (about 4 µs of pydantic per part saved). The sender's integration tests read
        # every sms.sent record back as the model.
        record = {
            "message_id": request.message_id, "tenant_id": request.tenant_id,
            "client_ref": request.client_ref, "route_id": routed.route_id,
            "smsc_id": routed.smsc_id, "operator_id": routed.operator_id,
            "country": routed.country, "destination": routed.destination,
            "part_index": seq - 1, "part_count": routed.parts, "outcome": outcome,
            "smsc_message_id": smsc_message_id, "command_status": command_status,
            "status_name": status_name(command_status) if command_status >= 0 else "NO_RESPONSE",
            "attempts": job.attempts, "latency_ms": latency_ms, "reason": reason,
            "submitted_at": request.submitted_at, "sent_at": now,
            "expires_at": request.submitted_at + validity,
            "receipt_requested": request.registered_delivery,
        }
        key = sent_key(routed.smsc_id, smsc_message_id, request.message_id, seq - 1)
        with self._lock:
            job.outcomes[seq] = outcome
            job.unacked += 1

        def done_stored(stored: bool) -> None:
            if not stored:
                return  # the offset stays uncommitted; a replay finds the part in doubt
            with self._lock:
                job.unacked -= 1
                complete = job.settled
            if complete:
                self._finish(job.partition, job.offset, job.epoch)

        def acked(error: KafkaError | None, _msg: Message) -> None:
            if error is not None:  # stopping: the offset stays uncommitted, the record replayed
                return
            # DONE only once the outcome is on sms.sent: a part the ledger calls DONE never
            # needs its outcome written again.
            self._ledger.write_done(request.message_id, seq - 1, job.partition,
                                    job.plan.reference or 0, done_stored)

        # The fields the worker's AIMD and windows need, so they need not decode the value.
        summary = sent_summary_header(
            routed.route_id, routed.operator_id, request.tenant_id,
            outcome is SubmitStatus.ACCEPTED, command_status, latency_ms, job.attempts,
        )
        value = SubmitOutcome.encode_fields_with(self._outcome_codec, record, self._sent)
        self._outcomes.add(key, value, summary, acked, in_doubt=seq in job.in_doubt)
