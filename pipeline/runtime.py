"""Worker-wide tasks: the configuration and route-health watchers, schema-registry priming and
the log level (registered on a worker by :func:`register`)."""

from __future__ import annotations

import asyncio
import logging

from mode.utils.logging import level_number

from pipeline.app import Worker
from pipeline.health_watch import HealthWatcher
from schemas.wire import prime
from smsflow.kafka_security import kafka_connection
from smsflow.native import log_status
from smsflow.topics import AVRO_TOPICS, ROUTE_HEALTH

__all__ = ["register"]


def register(worker: Worker) -> None:
    app, settings, config_watcher = worker.app, worker.settings, worker.config_watcher
    health_watcher = HealthWatcher(kafka_connection(settings), worker.name(ROUTE_HEALTH),
                                   config_watcher)

    @app.task
    async def watch_config() -> None:
        await config_watcher.run()

    @app.task
    async def watch_health() -> None:
        await health_watcher.run()

    @app.task
    async def watch_binds() -> None:
        await worker.bind_watcher.run()

    @app.timer(interval=5.0)
    async def rerank_routes() -> None:
        """Health reports age and hysteresis dwell times pass: re-rank without waiting for
        news."""
        await config_watcher.refresh()

    @app.task
    async def prime_schema_registry() -> None:
        """With a schema registry configured, register every topic's subject at start-up: a
        bad registry fails the worker now, and no agent's first send waits on HTTP."""
        topics = [(worker.name(spec.name), spec.value) for spec in AVRO_TOPICS]
        ids = await asyncio.get_running_loop().run_in_executor(None, prime, topics)
        if ids:
            logging.getLogger(__name__).info("schema registry subjects: %s", ids)

    @app.task
    async def apply_log_level() -> None:
        """faust's worker leaves the root logger at DEBUG (only its handler filters), so every
        debug call in faust and aiokafka builds a record: ~9% of a worker's CPU when profiled.
        Set the level itself."""
        logging.getLogger().setLevel(level_number(settings.log_level))
        log_status(logging.getLogger(__name__))  # compiled hot modules (smsflow/native.py)
