"""Pieces of the edge drills (bench/chaos.py, tests/integration): a tenant webhook receiver,
the webhooks connector as a stack process, a topic whose produces the broker refuses, and
reading what ended terminal.

Shared by the chaos bench and the integration tests so both drive the very same faults.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from types import TracebackType

from aiohttp import web
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from pydantic import SecretStr

from connectors.terminal_reader import TerminalReader
from smsflow.config.models import PlatformConfig, Webhook
from smsflow.devstack.stack import LocalStack, ManagedProcess
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import DLR, REJECTED, topic_name

#: The variable the drills' webhook secret reference names (``env:...``): a name, not a value.
WEBHOOK_SECRET_ENV = "SMSFLOW_DRILL_WEBHOOK_SECRET"  # noqa: S105


class HookReceiver:
    """Every tenant's webhook endpoint, on 127.0.0.1 in a thread of its own: answers 200 and
    counts the 2xx answers per ``X-Smsflow-Delivery-Id`` (a report's message id)."""

    def __init__(self, *, hold_after: int | None = None) -> None:
        self._lock = threading.Lock()
        self._delivered: Counter[str] = Counter()
        # With ``hold_after``: once that many reports were answered, further POSTs wait (their
        # connections open) until :meth:`release`, so a drill kills the connector mid-stream
        # for sure instead of racing a fast connector to the end.
        self._hold_after = hold_after
        self._released = asyncio.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hook-receiver",
                                        daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        delivery_id = request.headers.get("X-Smsflow-Delivery-Id", "")
        if self._hold_after is not None and not self._released.is_set():
            with self._lock:
                holding = len(self._delivered) >= self._hold_after
            if holding:
                await self._released.wait()
        with self._lock:
            self._delivered[delivery_id] += 1
        return web.Response(status=200)

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/hook/{tenant}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return port

    def url(self, tenant_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{tenant_id}"

    def release(self) -> None:
        """Answer the held POSTs and every later one at once (see ``hold_after``)."""
        self._loop.call_soon_threadsafe(self._released.set)

    def delivered(self) -> Counter[str]:
        """2xx answers so far, per delivery id."""
        with self._lock:
            return Counter(self._delivered)

    def __enter__(self) -> HookReceiver:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


def with_webhooks(config: PlatformConfig, receiver: HookReceiver) -> PlatformConfig:
    """``config`` with every tenant's reports POSTed to ``receiver`` (MO off), signed with the
    secret :data:`WEBHOOK_SECRET_ENV` names."""
    tenants = tuple(
        tenant.model_copy(update={"webhook": Webhook(
            url=receiver.url(tenant.id), secret=SecretStr(f"env:{WEBHOOK_SECRET_ENV}"),
            mo=False)})
        for tenant in config.tenants
    )
    return config.model_copy(update={"tenants": tenants})


def start_webhooks(stack: LocalStack) -> str:
    """Start ``smsflow webhooks run`` as the stack's process ``webhooks`` (a crash and restart
    gets the same environment, the secret's variable included); returns its name."""
    stack.env[WEBHOOK_SECRET_ENV] = secrets.token_hex(16)  # a fresh value per drill
    process = ManagedProcess(
        "webhooks",
        [*stack.smsflow_argv(), "webhooks", "run", "--metrics-port", "0", "--log-level",
         "warning", "--config-refresh-s", "1"],
        stack.home / "logs" / "webhooks.log",
    )
    process.start(stack.env)
    stack.processes.append(process)
    return process.name


def _topic_config(settings: Settings, stage: str, name: str, value: str | None) -> None:
    admin = AdminClient(client_config(kafka_connection(settings)))
    entry = ConfigEntry(name, value or "", incremental_operation=(
        AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE))
    resource = ConfigResource(ResourceType.TOPIC, topic_name(settings, stage),
                              incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def refuse_produce(settings: Settings, stage: str) -> None:
    """Make the broker refuse every produce to ``stage``'s topic: its ``max.message.bytes``
    set to 1, so each batch is answered MSG_SIZE_TOO_LARGE, a refusal librdkafka does not
    retry (the writer's own rules decide). Reads go on. Why not ``min.insync.replicas`` above
    the replicas: Kafka 4 caps the effective minimum at the replica count, so on one broker
    that refuses nothing (measured)."""
    _topic_config(settings, stage, "max.message.bytes", "1")


def accept_produce(settings: Settings, stage: str) -> None:
    """Undo :func:`refuse_produce`: back to the broker's default."""
    _topic_config(settings, stage, "max.message.bytes", None)


@contextmanager
def produce_refused(settings: Settings, stage: str) -> Iterator[None]:
    refuse_produce(settings, stage)
    try:
        yield
    finally:
        accept_produce(settings, stage)


def committed_total(settings: Settings, group: str, stage: str) -> int:
    """The sum over ``stage``'s partitions of ``group``'s committed offsets (0 where none)."""
    topic = topic_name(settings, stage)
    consumer = Consumer({**client_config(kafka_connection(settings)), "group.id": group,
                         "enable.auto.commit": False})
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        return sum(max(0, tp.offset) for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


def records_total(settings: Settings, stage: str) -> int:
    """Records ever written to ``stage``'s topic (the sum of its high watermarks)."""
    topic = topic_name(settings, stage)
    consumer = Consumer({**client_config(kafka_connection(settings)),
                         "group.id": f"watermarks-{uuid.uuid4()}"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(settings.partitions))
    finally:
        consumer.close()


def terminal_counts(settings: Settings, message_ids: Collection[str], *, timeout_s: float
                    ) -> tuple[Counter[str], Counter[str]]:
    """Wait until each of ``message_ids`` has a terminal record (or ``timeout_s`` passed), then
    a moment for late copies. Returns ``(terminal records per id, statuses)``; an id missing
    from the first has none (lost)."""
    wanted = set(message_ids)
    records: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    reader = TerminalReader(kafka_connection(settings), topic_name(settings, DLR),
                            topic_name(settings, REJECTED))
    try:
        deadline = time.monotonic() + timeout_s
        settle_until: float | None = None
        while time.monotonic() < (settle_until or deadline):
            for terminal in reader.poll(timeout_s=0.1):  # returns at its timeout: keep short
                message_id: str | None
                if terminal.report is not None:
                    message_id, status = terminal.report.message_id, terminal.report.status.value
                elif terminal.rejection is not None:
                    message_id = terminal.rejection.message_id
                    status = f"REJECTED:{terminal.rejection.reason_code}"
                else:
                    continue
                if message_id not in wanted:
                    continue
                records[message_id] += 1
                if records[message_id] == 1:
                    statuses[status] += 1
            if settle_until is None and len(records) == len(wanted):
                settle_until = time.monotonic() + 1.0  # late duplicates show up shortly after
        return records, statuses
    finally:
        reader.close()


__all__ = [
    "WEBHOOK_SECRET_ENV", "HookReceiver", "accept_produce", "committed_total",
    "produce_refused", "records_total", "refuse_produce", "start_webhooks", "terminal_counts",
    "with_webhooks",
]
