"""``smsflow webhooks`` against a real broker and a real HTTP server on 127.0.0.1.

Five tenants share one ``sms.dlr`` partition, the failing tenant's reports first:

* ``a``: its endpoint fails (503, or hangs past the timeout) until the test lets it recover;
* ``b``: fast, must get every report while ``a`` is failing, although ``a``'s are ahead of it;
* ``c``: answers 400, so its reports become ``WEBHOOK_REJECTED`` rejections;
* ``d``: has no webhook at first (skipped), then gets one through ``sms.config``, live;
* ``e``: always 503 with a two-second retry budget, so ``WEBHOOK_GAVE_UP``.

Halfway, while ``a`` still fails, the connector is stopped and started again: the commit was
held at ``a``'s first report, so the restarted one reads everything again and ``a`` loses
nothing (``b``'s reports are sent twice: at-least-once).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import SecretStr

from connectors.webhooks.policy import WebhookRetryPolicy
from connectors.webhooks.service import WebhookOptions, WebhookService
from connectors.webhooks.signing import verify_signature
from schemas.models import (
    DeliveryReport,
    DeliveryStatus,
    InboundKeyword,
    InboundMessage,
    Rejection,
)
from smsflow.config.kafka_io import apply_config
from smsflow.config.models import PlatformConfig, Tenant, Webhook
from smsflow.devstack.harness import isolated_settings
from smsflow.kafka_clients import producer_config
from smsflow.settings import Settings
from smsflow.topics import CONFIG, DLR, INBOUND, REJECTED, topic_name

TIMEOUT_S = 20.0
A_TIMEOUT_S = 0.5  # tenant a's webhook timeout; its endpoint hangs longer than that
SECRETS = {tenant: f"secret-of-{tenant}-0123456789" for tenant in "abcde"}


@dataclass
class Call:
    tenant: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    status: int | None  # None: the endpoint hung


@dataclass
class Receiver:
    """The tenants' endpoints, served from a thread of their own."""

    a_recovered: threading.Event = field(default_factory=threading.Event)
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        body = await request.read()
        with self.lock:
            attempt = sum(1 for c in self.calls if c.tenant == tenant)
        status: int | None = {"b": 200, "c": 400, "d": 200, "e": 503}.get(tenant, 200)
        if tenant == "a" and not self.a_recovered.is_set():
            status = 503 if attempt % 2 == 0 else None
        with self.lock:
            self.calls.append(Call(tenant, dict(request.headers), body, time.time(), status))
        if status is None:
            await asyncio.sleep(A_TIMEOUT_S * 3)  # the client gives up first
            status = 503
        return web.Response(status=status, text="unknown message" if status == 400 else "")

    def delivered(self, tenant: str, kind: str = "report") -> set[str]:
        """Delivery ids (a report's message_id, an MO's inbound_id) answered 2xx."""
        with self.lock:
            return {c.headers["X-Smsflow-Delivery-Id"] for c in self.calls
                    if c.tenant == tenant and c.status is not None and c.status < 300
                    and c.headers["X-Smsflow-Event"] == kind}

    def attempts(self, tenant: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.tenant == tenant)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/hook/{tenant}", receiver.handle)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    server = site._server
    assert server is not None
    receiver.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    thread = threading.Thread(target=loop.run_forever, name="webhook-receiver", daemon=True)
    thread.start()
    yield receiver
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "webhooks", partitions=1)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    names = [topic_name(settings, name) for name in (DLR, INBOUND, REJECTED, CONFIG)]
    topics = [NewTopic(name, num_partitions=1, replication_factor=-1) for name in names]
    for future in admin.create_topics(topics).values():
        future.result(timeout=30)
    yield settings
    for future in admin.delete_topics(names, operation_timeout=30).values():
        future.result(timeout=30)


def _config(port: int, *, with_d: bool) -> PlatformConfig:
    def hook(tenant: str, **extra: float) -> Webhook:
        return Webhook(url=f"http://127.0.0.1:{port}/hook/{tenant}",
                       secret=SecretStr(SECRETS[tenant]), **extra)  # type: ignore[arg-type]

    webhooks = {
        "a": hook("a", timeout_s=A_TIMEOUT_S, max_in_flight=2),
        "b": hook("b"),
        "c": hook("c"),
        "d": hook("d") if with_d else None,
        "e": hook("e", max_retry_s=2.0),
    }
    return PlatformConfig(tenants=tuple(
        Tenant(id=tenant, name=tenant.upper(), rate_limit_pps=10, webhook=webhook)
        for tenant, webhook in webhooks.items()
    ))


def _reports(tenant: str, count: int) -> list[DeliveryReport]:
    now = datetime.now(UTC)
    return [
        DeliveryReport(
            message_id=f"{tenant}-{index}-{uuid.uuid4().hex[:8]}", tenant_id=tenant,
            route_id="uk-direct", smsc_id="smsc-uk", operator_id="gb-ee", country="GB",
            destination="+447700900123", parts=1, status=DeliveryStatus.DELIVERED,
            error_code=0, smsc_message_ids=[str(index)], submitted_at=now, sent_at=now,
            done_at=now,
        )
        for index in range(count)
    ]


def _mo(tenant: str, count: int) -> list[InboundMessage]:
    return [
        InboundMessage(
            inbound_id=str(uuid.uuid4()), tenant_id=tenant, source="+447700900123",
            destination="60001", text=f"reply {index}", data_coding=0,
            keyword=InboundKeyword.NONE, smsc_id="smsc-uk", bind="smsc-uk#0",
            received_at=datetime.now(UTC),
        )
        for index in range(count)
    ]


def _produce_mo(settings: Settings, messages: list[InboundMessage]) -> None:
    producer = Producer(producer_config(settings.kafka_bootstrap))
    topic = topic_name(settings, INBOUND)
    for message in messages:
        assert message.tenant_id is not None
        producer.produce(topic, key=message.tenant_id.encode(), value=message.to_avro(topic))
    assert producer.flush(30) == 0


def _produce(settings: Settings, reports: list[DeliveryReport]) -> None:
    producer = Producer(producer_config(settings.kafka_bootstrap))
    topic = topic_name(settings, DLR)
    for report in reports:
        producer.produce(topic, key=report.tenant_id.encode(), value=report.to_avro(topic))
    assert producer.flush(30) == 0


def _wait_for(what: str, condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _committed(settings: Settings, group_id: str, topic: str = DLR) -> int | None:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group_id})
    try:
        [tp] = consumer.committed([TopicPartition(topic_name(settings, topic), 0)], timeout=10)
        return tp.offset if tp.offset >= 0 else None
    finally:
        consumer.close()


def _rejections(settings: Settings, expected: int) -> dict[tuple[str, str | None], Rejection]:
    """Distinct (reason code, message id) rejections: a restart may repeat some."""
    topic = topic_name(settings, REJECTED)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"check-{uuid.uuid4()}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    found: dict[tuple[str, str | None], Rejection] = {}
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(found) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                rejection = Rejection.from_avro(message.value())
                found[rejection.reason_code, rejection.message_id] = rejection
        return found
    finally:
        consumer.close()


def _start(settings: Settings, receiver: Receiver, group_id: str) -> tuple[
    WebhookService, threading.Thread
]:
    service = WebhookService(
        settings, _config(receiver.port, with_d=False),
        WebhookOptions(group_id=group_id, config_refresh_s=0.5, metrics_interval_s=5,
                       drain_timeout_s=5, policy=WebhookRetryPolicy(base_s=0.1, cap_s=0.3)),
    )
    thread = threading.Thread(target=service.run_blocking, name="webhooks", daemon=True)
    thread.start()
    return service, thread


def _stop(service: WebhookService, thread: threading.Thread) -> None:
    service.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_webhooks_per_tenant_isolation_signatures_rejections_and_live_config(
    settings: Settings, receiver: Receiver
) -> None:
    config_topic = topic_name(settings, CONFIG)
    apply_config(settings.kafka_bootstrap, config_topic, _config(receiver.port, with_d=False))
    a, b, c, d, e = (_reports(t, n) for t, n in (("a", 8), ("b", 8), ("c", 3), ("d", 3), ("e", 2)))
    _produce(settings, [*a, *c, *d, *e, *b])  # a's reports ahead of everyone else's

    group_id = f"{settings.app_id}-webhooks"
    service, thread = _start(settings, receiver, group_id)
    try:
        # b is served while a's endpoint fails, although a's reports come first.
        _wait_for("b's reports", lambda: receiver.delivered("b") == {r.message_id for r in b})
        assert receiver.delivered("a") == set()
        _wait_for("a being retried", lambda: receiver.attempts("a") >= 4)
        # a's first report is unfinished, so the partition's commit may not pass it.
        assert _committed(settings, group_id) in (None, 0)
    finally:
        _stop(service, thread)
    assert service.stats.retried >= 4 and service.stats.abandoned >= len(a)
    assert _committed(settings, group_id) in (None, 0)

    # A restart reads everything again from a's first report: nothing of a's is lost.
    service, thread = _start(settings, receiver, group_id)
    try:
        receiver.a_recovered.set()
        _wait_for("a's reports", lambda: receiver.delivered("a") == {r.message_id for r in a})

        rejections = _rejections(settings, expected=5).values()
        by_code = {
            code: {r.message_id for r in rejections if r.reason_code == code}
            for code in ("WEBHOOK_REJECTED", "WEBHOOK_GAVE_UP")
        }
        assert by_code["WEBHOOK_REJECTED"] == {r.message_id for r in c}
        assert by_code["WEBHOOK_GAVE_UP"] == {r.message_id for r in e}
        assert all(r.stage == "webhooks" and r.original for r in rejections)
        assert any("HTTP 400: unknown message" in r.reason for r in rejections)

        # d had no webhook: skipped, never called. Then one is added through sms.config.
        assert receiver.attempts("d") == 0
        assert service.stats.skipped == len(d)
        apply_config(settings.kafka_bootstrap, config_topic, _config(receiver.port, with_d=True))
        _wait_for("the new webhook", lambda: service.webhook_of("d") is not None)
        d_later = _reports("d", 3)
        _produce(settings, d_later)
        _wait_for("d's reports", lambda: receiver.delivered("d") == {r.message_id for r in d_later})

        total = sum(map(len, (a, b, c, d, e, d_later)))
        _wait_for("every offset committed", lambda: _committed(settings, group_id) == total)
    finally:
        _stop(service, thread)

    with receiver.lock:
        calls = list(receiver.calls)
    for call in calls:
        assert verify_signature(SECRETS[call.tenant], call.headers["X-Smsflow-Signature"],
                                call.body, now=call.received_at, tolerance_s=5)
        assert call.headers["X-Smsflow-Delivery-Id"] == json.loads(call.body)["message_id"]
        assert call.headers["Content-Type"] == "application/json"
    stats = service.stats  # of the restarted service, which read every report again
    assert (stats.delivered, stats.rejected, stats.gave_up) == (19, 3, 2)
    assert receiver.delivered("b") == {r.message_id for r in b}  # re-sent: at-least-once


def test_mo_messages_follow_the_report_rules_on_their_own_ledger(
    settings: Settings, receiver: Receiver
) -> None:
    """MO messages on sms.inbound: a's endpoint fails, so sms.inbound's commit stays at a's first
    MO message while b's MO messages and reports are delivered and sms.dlr's commit moves on
    (one ledger per topic). After a restart and a's recovery, a's MO messages arrive: nothing
    lost (b's again: at-least-once)."""
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG),
                 _config(receiver.port, with_d=False))
    a_mo, b_mo, b_reports = _mo("a", 3), _mo("b", 3), _reports("b", 3)
    _produce_mo(settings, [*a_mo, *b_mo])
    _produce(settings, b_reports)

    group_id = f"{settings.app_id}-webhooks-mo"
    service, thread = _start(settings, receiver, group_id)
    try:
        _wait_for("b's MO", lambda: receiver.delivered("b", "mo") == {m.inbound_id for m in b_mo})
        _wait_for("b's reports",
                  lambda: receiver.delivered("b") == {r.message_id for r in b_reports})
        _wait_for("sms.dlr committed", lambda: _committed(settings, group_id) == 3)
        _wait_for("a's MO being retried", lambda: receiver.attempts("a") >= 2)
        assert _committed(settings, group_id, INBOUND) in (None, 0)
    finally:
        _stop(service, thread)
    assert service.mo_stats.retried >= 1 and service.mo_stats.abandoned >= 1
    assert _committed(settings, group_id, INBOUND) in (None, 0)

    service, thread = _start(settings, receiver, group_id)
    try:
        receiver.a_recovered.set()
        _wait_for("a's MO", lambda: receiver.delivered("a", "mo") == {m.inbound_id for m in a_mo})
        _wait_for("sms.inbound committed", lambda: _committed(settings, group_id, INBOUND) == 6)
    finally:
        _stop(service, thread)
    assert service.mo_stats.delivered == 6  # a's and b's again, after the restart
    assert service.stats.received == 0  # the reports were committed before the restart

    with receiver.lock:
        calls = list(receiver.calls)
    for call in calls:
        body = json.loads(call.body)
        assert verify_signature(SECRETS[call.tenant], call.headers["X-Smsflow-Signature"],
                                call.body, now=call.received_at, tolerance_s=5)
        assert call.headers["X-Smsflow-Event"] == body["type"]
        id_field = "inbound_id" if body["type"] == "mo" else "message_id"
        assert call.headers["X-Smsflow-Delivery-Id"] == body[id_field]
