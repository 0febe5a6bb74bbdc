"""Feeds ``sms.route-health`` into the routing engine of this worker.

Like the configuration, every worker reads the whole compacted topic without a consumer group:
any worker may route to any route, so each needs every route's health.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer

from pipeline.config_watch import ConfigWatcher
from pipeline.decoding import decode
from schemas.codec import DecodeError
from schemas.models import RouteHealth
from smsflow.domain import route_engine

log = logging.getLogger(__name__)


def health_report(record: RouteHealth) -> route_engine.HealthReport:
    return route_engine.HealthReport(
        record.state,
        record.score,
        record.submit_latency_p95_ms,
        record.updated_at.timestamp(),
    )


async def watch_route_health(bootstrap: str, topic: str, watcher: ConfigWatcher) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            # The latest report per route of the batch, applied in one re-ranking: a burst of
            # reports (start-up replay, every route's heartbeat) costs one rebuild, not one each.
            latest: dict[str, route_engine.HealthReport] = {}
            for message in (m for records in batches.values() for m in records):
                if message.value is None:
                    continue  # tombstone: the route's health is forgotten when its config goes
                try:
                    record = await decode(RouteHealth, message.value)
                except (DecodeError, ValueError) as exc:
                    log.error("ignoring undecodable route-health record at %s@%d: %s",
                              message.partition, message.offset, exc)
                    continue
                latest[record.route_id] = health_report(record)
            if latest:
                await watcher.wait_ready()
                await watcher.apply_health(latest)
    finally:
        await consumer.stop()
