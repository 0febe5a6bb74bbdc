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
import time
from dataclasses import dataclass, replace

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.decoding import decode
from schemas.codec import DecodeError
from schemas.models import ConfigRecord
from smsflow.config.models import PlatformConfig
from smsflow.config.store import ConfigError, snapshot_from
from smsflow.domain import route_engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    config: PlatformConfig
    version: int  # offset of the last record folded in
    engine: route_engine.Snapshot  # the routing engine's view: catalogue + route health


class ConfigWatcher:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._ready = asyncio.Event()
        self._records: dict[str, ConfigRecord] = {}
        empty = PlatformConfig()
        self.snapshot = Snapshot(
            empty, -1,
            route_engine.build_snapshot(route_engine.build_catalogue(empty), {}, time.time()),
        )

    async def wait_ready(self) -> Snapshot:
        if not self._ready.is_set():
            await self._ready.wait()
        return self.snapshot

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        try:
            partition = TopicPartition(self._topic, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            if end == 0:
                # Traffic waits (it is not rejected) until configuration arrives.
                log.warning("config topic %s is empty: run `smsflow config apply`", self._topic)
            while True:
                batches = await consumer.getmany(partition, timeout_ms=1000)
                records = batches.get(partition, [])
                for message in records:
                    await self._fold(message.key, message.value, message.offset)
                if records or not self._ready.is_set():
                    position = await consumer.position(partition)
                    # Publish only complete states: the initial replay up to the end offset
                    # seen at start, then after every batch of live changes.
                    if position >= end and self._records:
                        await self._publish(position - 1)
        finally:
            await consumer.stop()

    async def _fold(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        name = (key or b"").decode(errors="replace")
        if value is None:
            self._records.pop(name, None)
            return
        try:
            self._records[name] = await decode(ConfigRecord, value)
        except (DecodeError, ValueError) as exc:
            log.error("ignoring undecodable config record %s at offset %d: %s", name, offset, exc)

    def apply_health(self, route_id: str, report: route_engine.HealthReport) -> None:
        """A route-health record arrived: the engine demotes or promotes the route."""
        engine = route_engine.with_health(self.snapshot.engine, route_id, report, time.time())
        self.snapshot = replace(self.snapshot, engine=engine)

    def refresh(self) -> None:
        """Re-rank at ``now`` (health reports age, dwell times pass)."""
        engine = route_engine.refresh(self.snapshot.engine, time.time())
        self.snapshot = replace(self.snapshot, engine=engine)

    async def _publish(self, version: int) -> None:
        try:
            config = snapshot_from(self._records)
        except ConfigError as exc:
            log.error("keeping previous configuration: %s", exc)
            return
        # Building the catalogue proves number-prefix tables per country: ~0.15 s warm, ~1.5 s
        # (more with many countries) the first time. Off the event loop, so traffic and Kafka
        # heartbeats keep going; the ranking step that merges health stays on the loop (cheap,
        # and health updates must not race it).
        catalogue = await asyncio.get_running_loop().run_in_executor(
            None, route_engine.build_catalogue, config
        )
        now = time.time()
        engine = route_engine.with_config(self.snapshot.engine, catalogue, now)
        self.snapshot = Snapshot(config, version, engine)
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
