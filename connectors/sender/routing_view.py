"""The sender's view of routing for failover: ``sms.config`` and ``sms.route-health``, followed.

When an SMSC stays unreachable or refuses a message for good, the sender sends the message
back through the throttle on the next eligible route (``SenderService._fail_over``). Which
route is eligible is the routing engine's call, and it needs what the worker's routers see:
the routes enabled now, and their health. The sender used to decide with the configuration it
read at start and no health at all, so it could fail a message over to a route that is
``DOWN`` or was disabled since (docs/architecture.md, known gaps).

:class:`RoutingView` follows both compacted topics from the beginning on a thread of its own
(no consumer group: every sender needs every route's state, as every worker does) and
publishes an immutable :class:`View` (configuration, ranked engine, version) that the
consuming thread reads without a lock. Rebuilding the engine (~0.15-0.4 s for a large
catalogue) happens on this thread, so a configuration change never stalls the consuming
thread. Unlike the worker's routers, the view does not re-rank on a timer: reports that went
stale and dwell times that passed are evaluated by ``route_engine.decide`` itself past the
snapshot's ``valid_until`` (a slower path, fine for the few failover decisions), so a large
catalogue costs the sender nothing while no news arrives.

Nothing is published until the view has read both topics to the end offsets it found when
it (re)started, so a half-read configuration never replaces a whole one. Any failure of the
consumer is logged and counted, and a new consumer reads both topics again after a backoff
(1 s doubling to 30 s); the last published view stays in use meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from pydantic import ValidationError

from schemas.codec import DecodeError
from schemas.models import ConfigRecord, RoutedMessage, RouteHealth
from schemas.retrying import decode_blocking
from smsflow.config.models import PlatformConfig
from smsflow.config.store import ConfigError, snapshot_from
from smsflow.domain import route_engine
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget

__all__ = ["RoutingInputs", "RoutingView", "View", "failed_over", "failover_decision"]

log = logging.getLogger("smsflow.sender.routing_view")

_POLL_S: Final = 0.5
_FIRST_BACKOFF_S: Final = 1.0
_MAX_BACKOFF_S: Final = 30.0


def failed_over(engine: route_engine.Snapshot, routed: RoutedMessage, now: datetime
                ) -> RoutedMessage | route_engine.RouteRejection:
    """``routed`` on the route it fails over to (its current route added to ``failed_routes``,
    routed again at ``now``, to pass the throttle again), or why there is none."""
    decision = failover_decision(engine, routed, now.timestamp())
    if isinstance(decision, route_engine.RouteRejection):
        return decision
    return routed.model_copy(update={
        "route_id": decision.route_id, "smsc_id": decision.smsc_id,
        "operator_id": decision.operator_id or routed.operator_id,
        "failed_routes": [*routed.failed_routes, routed.route_id],
        "routed_at": now, "throttled_at": None,
    })


def failover_decision(engine: route_engine.Snapshot, routed: RoutedMessage, now: float
                      ) -> route_engine.Decision | route_engine.RouteRejection:
    """The route ``routed`` fails over to: the engine's ranking for the message, past every
    route it has already failed on (its ``failed_routes`` and its current route)."""
    request = routed.request
    decision = route_engine.decide(
        engine,
        route_engine.RouteRequest(request.tenant_id, routed.destination, request.message_type,
                                  parts=routed.parts),
        now,
    )
    for route_id in (*routed.failed_routes, routed.route_id):
        if isinstance(decision, route_engine.RouteRejection):
            break
        decision = route_engine.next_route(decision, route_id)
    return decision


@dataclass(frozen=True)
class View:
    """What the consuming thread reads: replaced whole, never changed."""

    config: PlatformConfig
    engine: route_engine.Snapshot
    #: Counts published configurations (0: the one the sender started with).
    version: int = 0


@dataclass
class RoutingInputs:
    """The latest record per key of both topics, as read so far (owned by the view's thread)."""

    config_records: dict[str, ConfigRecord] = field(default_factory=dict)
    reports: dict[str, route_engine.HealthReport] = field(default_factory=dict)
    config_changed: bool = False
    health_changed: bool = False

    def apply_config(self, key: str, value: bytes | None) -> None:
        if value is None:  # tombstone: the object was removed by `config apply`
            self.config_changed |= self.config_records.pop(key, None) is not None
            return
        try:
            self.config_records[key] = decode_blocking(ConfigRecord, value)
        except (DecodeError, ValidationError) as exc:
            # The worker's watcher skips it too; `config apply` rewrites what it cannot read.
            log.error("routing view: undecodable config record %s skipped: %s", key, exc)
            return
        self.config_changed = True

    def apply_health(self, key: str, value: bytes | None) -> None:
        if value is None:  # tombstone: the route's health is forgotten when its config goes
            self.health_changed |= self.reports.pop(key, None) is not None
            return
        try:
            record = decode_blocking(RouteHealth, value)
        except (DecodeError, ValidationError) as exc:
            log.error("routing view: undecodable route-health record %s skipped: %s", key, exc)
            return
        self.reports[record.route_id] = record.engine_report()
        self.health_changed = True

    def next_view(self, previous: View, now: float) -> View:
        """``previous`` brought up to date with what was read since (and re-ranked at ``now``).
        A configuration that does not assemble (a half-applied change) keeps the previous
        one, as the worker's watcher does; health still applies."""
        config, catalogue, version = previous.config, previous.engine.catalogue, previous.version
        if self.config_changed:
            try:
                config = snapshot_from(self.config_records)
            except ConfigError as exc:
                log.error("routing view: keeping the previous configuration: %s", exc)
            else:
                catalogue, version = route_engine.build_catalogue(config), version + 1
        self.config_changed = self.health_changed = False
        engine = route_engine.build_snapshot(catalogue, dict(self.reports), now, previous.engine)
        return View(config, engine, version)


class RoutingView:
    """Follows ``config_topic`` and ``health_topic`` on a daemon thread; :attr:`current` is the
    latest :class:`View`."""

    def __init__(self, bootstrap: KafkaTarget, config_topic: str, health_topic: str,
                 config: PlatformConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._bootstrap, self._clock = bootstrap, clock
        self._config_topic, self._health_topic = config_topic, health_topic
        now = clock()
        self.current = View(config, route_engine.build_snapshot(
            route_engine.build_catalogue(config), {}, now))
        #: Consumers that failed and were replaced (smsflow_sender_routing_view_failures_total).
        self.failures = 0
        #: Set once both topics were read to their end at least once.
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender-routing-view",
                                        daemon=True)

    def start(self) -> None:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        backoff = _FIRST_BACKOFF_S
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._follow()
            except Exception:  # a view that stops following would go stale for good
                self.failures += 1
                log.exception("routing view: following %s and %s failed; reading them again "
                              "in %.0f s", self._config_topic, self._health_topic, backoff)
            if time.monotonic() - started > 60:
                backoff = _FIRST_BACKOFF_S
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _follow(self) -> None:
        consumer = Consumer({
            **client_config(self._bootstrap),
            # Required by the client; assigned, nothing is committed or joined. The prefix is
            # the one the sender's KafkaUser grants for reading sms.config.
            "group.id": f"smsflow-config-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            # The end of a partition is where catching up ends: its high watermark can sit past
            # the last record delivered (a transaction marker, a tombstone compacted away).
            "enable.partition.eof": True,
        })
        try:
            ends = self._assign(consumer)
            inputs = RoutingInputs()
            published = False  # by this reader: a restarted one publishes once caught up
            while not self._stop.is_set():
                for message in consumer.consume(500, _POLL_S):
                    self._apply(inputs, message, ends)
                if ends:  # still catching up: publish nothing half-read
                    continue
                if inputs.config_changed or inputs.health_changed or not published:
                    self.current = inputs.next_view(self.current, self._clock())
                    published = True
                    self.caught_up.set()
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        """Assign every partition of both topics from the beginning; the end offsets to reach
        before the first publication (partitions that are empty are left out)."""
        partitions: list[TopicPartition] = []
        for topic in (self._config_topic, self._health_topic):
            metadata = consumer.list_topics(topic, timeout=30).topics.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                raise KafkaException(f"topic {topic} is not available: "
                                     f"{None if metadata is None else metadata.error}")
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING)
                           for p in sorted(metadata.partitions)]
        ends: dict[tuple[str, int], int] = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
            if high > low:
                ends[(tp.topic, tp.partition)] = high
        consumer.assign(partitions)
        return ends

    def _apply(self, inputs: RoutingInputs, message: Message,
               ends: dict[tuple[str, int], int]) -> None:
        where = (message.topic() or "", message.partition() or 0)
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                ends.pop(where, None)  # read to its end (past any offset without a record)
            else:  # the client retries by itself
                log.warning("routing view: %s", error)
            return
        key = (message.key() or b"").decode(errors="replace")
        if where[0] == self._config_topic:
            inputs.apply_config(key, message.value())
        else:
            inputs.apply_health(key, message.value())
        end = ends.get(where)
        if end is not None and (message.offset() or 0) + 1 >= end:
            del ends[where]
