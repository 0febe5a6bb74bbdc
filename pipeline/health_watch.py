"""Feeds ``sms.route-health`` into the routing engine of this worker.

Like the configuration, every worker reads the whole compacted topic without a consumer group:
any worker may route to any route, so each needs every route's health. A
:class:`~pipeline.topic_follower.TopicFollower`: restarted after any failure, reading the topic
from the beginning again.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer

from pipeline.config_watch import ConfigWatcher
from pipeline.decoding import decode_or_log
from pipeline.topic_follower import Batch, TopicFollower
from schemas.models import RouteHealth
from smsflow.domain import route_engine
from smsflow.domain.route_state import RouteState
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)


class HealthWatcher(TopicFollower):
    """Applies the latest report per route of each fetched batch, in one re-ranking: a burst
    of reports (start-up replay, every route's heartbeat) costs one rebuild, not one each."""

    max_records = 1000

    def __init__(self, bootstrap: KafkaTarget, topic: str, watcher: ConfigWatcher,
                 **kwargs: Any) -> None:
        super().__init__("route-health watcher", bootstrap, **kwargs)
        self._topic = topic
        self._watcher = watcher
        self._states: dict[str, RouteState] = {}  # as last applied, per route

    async def start_reading(self, consumer: AIOKafkaConsumer) -> None:
        consumer.subscribe([self._topic])  # no group: every partition, from the earliest

    async def on_batch(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        latest: dict[str, route_engine.HealthReport] = {}
        for message in (m for records in batch.values() for m in records):
            if message.value is None:
                continue  # tombstone: the route's health is forgotten when its config goes
            record = await decode_or_log(RouteHealth, message, "route-health record")
            if record is None:
                continue
            latest[record.route_id] = record.engine_report()
        if latest:
            await self._watcher.wait_ready()
            await self._watcher.apply_health(latest)
            for route_id, report in latest.items():
                if self._states.get(route_id) is not report.state:
                    self._states[route_id] = report.state
                    log.info("routing now sees route %s as %s (score %.3f)", route_id,
                             report.state.value, report.score)
