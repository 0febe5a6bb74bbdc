"""One API process's state: its copies of the key table, configuration and stored answers, its
Kafka producers and its rate buckets; started and stopped with the HTTP server (lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from api.admission import Admission
from api.config_view import ConfigView
from api.follower import TopicFollower
from api.idempotency import IdempotencyStore
from api.inbound_feed import InboundStore
from api.kafka_out import KafkaOut
from api.key_table import KeyTable
from api.metrics import ApiMetrics
from api.settings import ApiSettings
from api.status_feed import StatusStore
from api.status_forward import StatusForward
from schemas.models import SubmitRequest
from smsflow.gc_policy import freeze_start_up_state
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import API_IDEMPOTENCY, API_KEYS, CONFIG, SUBMITTED, topic_name

log = logging.getLogger(__name__)

_PRUNE_EVERY_S = 300.0
_FREEZE_POLL_S = 0.2
_KAFKA_CHECK_TTL_S = 1.0


@dataclass(frozen=True)
class Readiness:
    kafka: bool
    keys: bool
    config: bool
    idempotency: bool
    status: bool  # informational: POSTs do not need it; the GET routes answer 503 without it
    inbound: bool  # informational, likewise: GET /v1/inbound answers 503 without it

    @property
    def ready(self) -> bool:
        return self.kafka and self.keys and self.config and self.idempotency


class ApiRuntime:
    def __init__(self, settings: Settings, api: ApiSettings, pepper: bytes) -> None:
        self.settings = settings
        self.api = api
        bootstrap = kafka_connection(settings)
        self.submitted_topic = topic_name(settings, SUBMITTED)
        self.idempotency_topic = topic_name(settings, API_IDEMPOTENCY)
        self.keys = KeyTable(bootstrap, topic_name(settings, API_KEYS), pepper)
        self.config = ConfigView(bootstrap, topic_name(settings, CONFIG))
        self.idempotency = IdempotencyStore(
            bootstrap, self.idempotency_topic, api.idempotency_ttl_s
        )
        # Role submit keeps no store: the GET routes that need one go to api.status_url.
        stores = api.role == "all"
        self.status = (
            StatusStore(settings, api.status_window_s) if stores and api.status_enabled else None
        )
        self.inbound = (
            InboundStore(settings, api.inbound_window_s, api.inbound_max_per_tenant)
            if stores and api.inbound_enabled else None
        )
        self.forward = (
            StatusForward(api.status_url)
            if api.role == "submit" and api.status_url is not None else None
        )
        self.admission = Admission(api.instances)
        self.metrics = ApiMetrics(CollectorRegistry())
        self._out: KafkaOut | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._kafka_checked = (-_KAFKA_CHECK_TTL_S, False)

    @property
    def out(self) -> KafkaOut:
        if self._out is None:
            raise RuntimeError("the API runtime is not started")
        return self._out

    def _followers(self) -> list[TopicFollower]:
        followers = [self.keys.follower, self.config.follower, self.idempotency.follower]
        optional = [store.follower for store in (self.status, self.inbound) if store is not None]
        return followers + optional

    async def start(self) -> None:
        for follower in self._followers():
            follower.start()
        self._out = KafkaOut(
            kafka_connection(self.settings), self.submitted_topic, self.api.produce_timeout_s
        )
        # With a schema registry, the first encode registers/looks up the subject over HTTP
        # (blocking): do it now, off the loop, not in the first tenant's request.
        await asyncio.to_thread(SubmitRequest.codec)
        codec = SubmitRequest.codec()
        schema_id = getattr(codec, "schema_id", None)
        if schema_id is not None:
            await asyncio.to_thread(schema_id, self.submitted_topic)
        if self.forward is not None:
            await self.forward.start()
        self._tasks.append(asyncio.create_task(self._prune_answers()))
        self._tasks.append(asyncio.create_task(self._freeze_when_loaded()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.forward is not None:
            await self.forward.stop()
        for follower in self._followers():
            await asyncio.to_thread(follower.stop)
        if self._out is not None:
            await asyncio.to_thread(self._out.close)

    async def _prune_answers(self) -> None:
        while True:
            await asyncio.sleep(_PRUNE_EVERY_S)
            self.idempotency.prune(time.time())

    async def _freeze_when_loaded(self) -> None:
        # Keys, config (the routing catalogue's number tables) and idempotency answers loaded
        # by now live as long as the process: out of the collector's walks (smsflow/gc_policy.py).
        while not self.loaded():
            await asyncio.sleep(_FREEZE_POLL_S)
        freeze_start_up_state()

    def loaded(self) -> bool:
        return (
            self.keys.follower.caught_up.is_set()
            and self.config.follower.caught_up.is_set()
            and self.idempotency.follower.caught_up.is_set()
        )

    async def readiness(self) -> Readiness:
        checked_at, reachable = self._kafka_checked
        now = time.monotonic()
        if now - checked_at >= _KAFKA_CHECK_TTL_S:
            reachable = self._out is not None and await asyncio.to_thread(
                self._out.reachable, 2.0
            )
            self._kafka_checked = (now, reachable)
        return Readiness(
            kafka=reachable,
            keys=self.keys.follower.caught_up.is_set(),
            config=self.config.follower.caught_up.is_set(),
            idempotency=self.idempotency.follower.caught_up.is_set(),
            status=self.status is not None and self.status.follower.caught_up.is_set(),
            inbound=self.inbound is not None and self.inbound.follower.caught_up.is_set(),
        )
