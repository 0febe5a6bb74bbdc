"""Keeps the worker's configuration snapshot current from the compacted ``sms.config`` topic.

Every worker reads the whole (single-partition) topic itself, without a consumer group, so each
one holds the full snapshot regardless of which flow partitions it owns. Agents wait for the
first complete snapshot before handling traffic, and pick up later changes without restart.
A record that cannot be decoded or an inconsistent intermediate state keeps the previous
snapshot and is logged loudly; it never stops the flow.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.decoding import decode
from pipeline.topic_follower import Batch, TopicFollower
from schemas.codec import DecodeError
from schemas.models import ConfigRecord
from smsflow.config.config_read import read_config
from smsflow.config.models import PlatformConfig, Tenant
from smsflow.config.store import ConfigError, snapshot_from
from smsflow.domain import route_engine
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfigSnapshot:
    config: PlatformConfig
    version: int  # offset of the last record folded in
    engine: route_engine.Snapshot  # the routing engine's view: catalogue + route health

    @cached_property
    def _tenants_by_id(self) -> dict[str, Tenant]:
        return {tenant.id: tenant for tenant in self.config.tenants}

    @cached_property
    def _smsc_by_route(self) -> dict[str, str]:
        return {route.id: route.smsc for route in self.config.routes}

    def smsc_of(self, route_id: str) -> str | None:
        """The SMSC account a route submits through (None: unknown route)."""
        return self._smsc_by_route.get(route_id)

    def tenant(self, tenant_id: str) -> Tenant | None:
        """The configuration of ``tenant_id`` (None: unknown); indexed once per snapshot."""
        return self._tenants_by_id.get(tenant_id)


class ConfigWatcher(TopicFollower):
    """Folds ``sms.config`` into :class:`Snapshot` values (a :class:`TopicFollower`: restarted
    after any failure, replaying the topic from the start)."""

    def __init__(self, bootstrap: KafkaTarget, topic: str, **kwargs: Any) -> None:
        super().__init__("configuration watcher", bootstrap, **kwargs)
        self._topic = topic
        self._end = 0
        self._ready = asyncio.Event()
        self._updating = asyncio.Lock()
        self._records: dict[str, ConfigRecord] = {}
        empty = PlatformConfig()
        self.snapshot = ConfigSnapshot(
            empty, -1,
            route_engine.build_snapshot(route_engine.build_catalogue(empty), {}, time.time()),
        )

    def prewarm(self, group_id: str) -> threading.Thread:
        """Build the catalogue of the configuration on the topic now, in a daemon thread, and
        throw it away: its number-prefix tables are memoised for the process (~1.5-2 s the
        first time on the 2-core dev box, ~0.2 s after). Called before faust starts, the work
        overlaps faust's start-up (topic creation, group join: mostly waiting on the broker)
        instead of following it, so the first snapshot, which traffic waits for, comes that
        much sooner. Anything that goes wrong here only leaves the tables cold. ``group_id``:
        one the worker's Kafka ACLs let it describe (its own: the read joins no group)."""

        def warm() -> None:
            try:
                config = read_config(self._bootstrap, self._topic, group_id=group_id)
                if config.routes:
                    route_engine.build_catalogue(config)
            except Exception as exc:  # a cold start is the only consequence
                log.info("catalogue pre-warm skipped: %s", exc)

        thread = threading.Thread(target=warm, name="catalogue-prewarm", daemon=True)
        thread.start()
        return thread

    async def wait_ready(self) -> ConfigSnapshot:
        if not self._ready.is_set():
            await self._ready.wait()
        return self.snapshot

    async def start_reading(self, consumer: AIOKafkaConsumer) -> None:
        # Read from the beginning each time (also after a restart): records deleted meanwhile
        # may be compacted away, so the fold starts empty; the current snapshot stays in force
        # until the replay is complete.
        self._records = {}
        partition = TopicPartition(self._topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        self._end = (await consumer.end_offsets([partition]))[partition]
        if self._end == 0:
            # Traffic waits (it is not rejected) until configuration arrives.
            log.warning("config topic %s is empty: run `smsflow config apply`", self._topic)

    async def on_batch(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        partition = TopicPartition(self._topic, 0)
        records = batch.get(partition, [])
        for message in records:
            await self._fold(message.key, message.value, message.offset)
        if records or not self._ready.is_set():
            position = await consumer.position(partition)
            # Publish only complete states: the initial replay up to the end offset seen at
            # start, then after every batch of live changes.
            if position >= self._end and self._records:
                await self._publish(position - 1)

    async def _fold(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        name = (key or b"").decode(errors="replace")
        if value is None:
            self._records.pop(name, None)
            return
        try:
            self._records[name] = await decode(ConfigRecord, value)
        except (DecodeError, ValueError) as exc:
            log.error("ignoring undecodable config record %s at offset %d: %s", name, offset, exc)

    async def apply_health(self, reports: Mapping[str, route_engine.HealthReport]) -> None:
        """Route-health records arrived (the latest per route of a fetched batch): the engine
        demotes or promotes those routes, in one re-ranking."""
        await self._rebuild(lambda engine, now: route_engine.build_snapshot(
            engine.catalogue, {**engine.reports, **reports}, now, engine))

    async def refresh(self) -> None:
        """Re-rank at ``now`` (health reports age, dwell times pass)."""
        await self._rebuild(route_engine.refresh)

    async def _rebuild(
        self, step: Callable[[route_engine.Snapshot, float], route_engine.Snapshot]
    ) -> None:
        """Replace the engine by ``step(engine, now)``, computed off the event loop.

        A status change on a widely used route re-ranks many destination keys (~0.36 s with
        the routing benchmark's catalogue of 1,000 tenants and 200 operators): in a worker
        thread, the loop keeps routing with the previous snapshot meanwhile (it gets the GIL
        back every few ms). One rebuild at a time, each from the latest snapshot, so
        configuration, health and refreshes never overwrite each other's results.
        """
        async with self._updating:
            engine = await asyncio.get_running_loop().run_in_executor(
                None, step, self.snapshot.engine, time.time())
            self.snapshot = replace(self.snapshot, engine=engine)

    async def _publish(self, version: int) -> None:
        try:
            config = snapshot_from(self._records)
        except ConfigError as exc:
            log.error("keeping previous configuration: %s", exc)
            return
        # Building the catalogue proves number-prefix tables per country: ~0.15 s warm, ~1.5 s
        # (more with many countries) the first time. Off the event loop, so traffic and Kafka
        # heartbeats keep going; so is the ranking step, one rebuild at a time (_rebuild).
        catalogue = await asyncio.get_running_loop().run_in_executor(
            None, route_engine.build_catalogue, config
        )
        async with self._updating:
            engine = await asyncio.get_running_loop().run_in_executor(
                None, route_engine.with_config, self.snapshot.engine, catalogue, time.time())
            self.snapshot = ConfigSnapshot(config, version, engine)
        if not self._ready.is_set():
            # Start-up garbage (imports, faust, the first catalogue's number tables) is never
            # freed: move it out of the collector's sight so full collections stay short and
            # do not show in per-message tail latency. Once only: freezing after every rebuild
            # would pin each replaced snapshot forever.
            gc.freeze()
        self._ready.set()
        log.info(
            "configuration v%d: %d tenants, %d operators, %d routes",
            version, len(config.tenants), len(config.operators), len(config.routes),
        )
