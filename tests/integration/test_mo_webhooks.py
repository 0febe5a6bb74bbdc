"""Inbound (MO) messages end to end: SMSC simulator → sender → ``sms.inbound`` → the tenant's
webhook (signed, ``type: mo``) and ``GET /v1/inbound``; an MO to no tenant's number → a
dead letter on ``sms.rejected``. Real broker, real simulator session, real HTTP servers on
127.0.0.1 (the tenants' receiver and the API).

Tenants (each owns one short code):

* ``acme-bank`` (60001): MO on its webhook URL, next to its reports;
* ``shopfast`` (60002): a separate ``mo_url``, which answers 503 once, then 200 (retried);
* ``promo-blast`` (60003): ``mo: false``, reports only: its MO is never POSTed, still listed
  by the API.

Destination 69999 belongs to nobody.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from api.tenants_cli import create_key
from connectors.sender.service import SenderService
from connectors.webhooks.policy import WebhookRetryPolicy
from connectors.webhooks.service import WebhookOptions, WebhookService
from connectors.webhooks.signing import verify_signature
from schemas.models import InboundMessage, Rejection
from smsflow.config.kafka_io import apply_config
from smsflow.config.models import Inbound, PlatformConfig, Webhook
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import isolated_settings, read_records
from smsflow.settings import Settings
from smsflow.topics import CONFIG, INBOUND, REJECTED, apply_topics, topic_name
from tests.integration.api_server import PEPPER, running_api
from tests.integration.simulators import platform_simulator
from tests.paths import PLATFORM_CONFIG

TIMEOUT_S = 30.0
NUMBERS = {"acme-bank": "60001", "shopfast": "60002", "promo-blast": "60003"}
SECRETS = {tenant: f"mo-secret-of-{tenant}-0123456789" for tenant in NUMBERS}


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    status: int


@dataclass
class Receiver:
    """The tenants' endpoints, in the test's event loop. ``/shopfast-mo`` fails once."""

    calls: list[Call] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["name"]
        failed_before = any(c.path == path and c.status == 503 for c in self.calls)
        status = 503 if path == "shopfast-mo" and not failed_before else 200
        self.calls.append(Call(path, dict(request.headers), await request.read(), time.time(),
                               status))
        return web.Response(status=status)

    def delivered(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(c.body) for c in self.calls if c.path == path and c.status == 200]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{name}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    yield receiver, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    await runner.cleanup()


def _config(port: int, sim_port: int) -> PlatformConfig:
    config = load_yaml(PLATFORM_CONFIG)
    hook = f"http://127.0.0.1:{port}/hook"
    webhooks: dict[str, dict[str, Any]] = {
        "acme-bank": {"url": f"{hook}/acme-bank"},
        "shopfast": {"url": f"{hook}/shopfast-dlr", "mo_url": f"{hook}/shopfast-mo"},
        "promo-blast": {"url": f"{hook}/promo-blast", "mo": False},
    }
    tenants = tuple(
        tenant.model_copy(update={
            "inbound": Inbound(numbers=(NUMBERS[tenant.id],)),
            "webhook": Webhook.model_validate(
                {**webhooks[tenant.id], "secret": SecretStr(SECRETS[tenant.id])}),
        }) if tenant.id in NUMBERS else tenant
        for tenant in config.tenants
    )
    smscs = tuple(s.model_copy(update={"port": sim_port, "binds": 1}) for s in config.smscs)
    return config.model_copy(update={"tenants": tenants, "smscs": smscs})


async def _eventually(what: str, condition: Callable[[], Any], timeout_s: float = TIMEOUT_S
                      ) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _committed(settings: Settings, group_id: str, topic: str) -> int | None:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group_id})
    try:
        [tp] = consumer.committed([TopicPartition(topic_name(settings, topic), 0)], timeout=10)
        return tp.offset if tp.offset >= 0 else None
    finally:
        consumer.close()


@pytest.mark.asyncio
async def test_mo_reaches_the_tenant_s_webhook_signed_and_its_api_only(
    kafka_bootstrap: str, tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    calls, port = receiver
    settings = isolated_settings(kafka_bootstrap, tmp_path, "mohooks", partitions=1)
    apply_topics(settings)
    sim = platform_simulator(seed=11, receipt_retry_ms=50)
    config = _config(port, sim.port)
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG), config)
    keys = {tenant: create_key(settings, PEPPER.encode(), tenant)[0] for tenant in NUMBERS}

    sender = SenderService(settings, config, group_id=f"mohooks-{uuid.uuid4().hex[:8]}")
    sender.drain_timeout_s = 1.0
    group_id = f"{settings.app_id}-webhooks"
    hooks = WebhookService(settings, config, WebhookOptions(
        group_id=group_id, config_refresh_s=0.5, drain_timeout_s=5,
        policy=WebhookRetryPolicy(base_s=0.1, cap_s=0.3)))
    threads = [threading.Thread(target=sender.run, name="sender", daemon=True),
               threading.Thread(target=hooks.run_blocking, name="webhooks", daemon=True)]
    for thread in threads:
        thread.start()
    try:
        sent = [("+447700900123", "60001", "Hello acme"), ("+447700900124", "60002", " Stop "),
                ("+447700900125", "60003", "quiet please"), ("+447700900123", "60001", "again"),
                ("+447700900126", "69999", "who is this")]
        for source, destination, text in sent:
            sim.originate("smsc-uk", source, destination, text)
        await _eventually("every MO acknowledged to the SMSC",
                          lambda: sim.stats.receipts_acked >= len(sent))

        # acme-bank: both MO on its webhook URL, in order, typed and signed.
        acme = await _eventually("acme-bank's MO", lambda: len(
            calls.delivered("acme-bank")) == 2 and calls.delivered("acme-bank"))
        assert [m["text"] for m in acme] == ["Hello acme", "again"]
        assert all(m["type"] == "mo" and m["tenant_id"] == "acme-bank" for m in acme)
        assert acme[0]["source"] == "+447700900123" and acme[0]["destination"] == "60001"
        # shopfast: on its mo_url, after one 503 (retried like a report); STOP classified.
        [stop] = await _eventually("shopfast's MO", lambda: calls.delivered("shopfast-mo"))
        assert stop["keyword"] == "OPT_OUT" and stop["text"] == " Stop "
        assert [c.status for c in calls.calls if c.path == "shopfast-mo"] == [503, 200]
        # promo-blast has mo: false; everything read is committed on sms.inbound.
        await _eventually("sms.inbound committed",
                          lambda: _committed(settings, group_id, INBOUND) == 4)
        assert hooks.mo_stats.skipped == 1 and hooks.mo_stats.delivered == 3
        assert hooks.mo_stats.retried == 1

        # The unresolved MO: dead-lettered with its reason, never on sms.inbound or a webhook.
        inbound = [InboundMessage.from_avro(v or b"") for _k, v in read_records(settings, INBOUND)]
        assert sorted(m.tenant_id or "" for m in inbound) == [
            "acme-bank", "acme-bank", "promo-blast", "shopfast"]
        dead = [r for r in map(Rejection.from_avro, (v or b"" for _k, v in read_records(
            settings, REJECTED))) if r.reason_code == "MO_UNKNOWN_DESTINATION"]
        assert len(dead) == 1 and dead[0].stage == "sender" and "69999" in dead[0].reason
        assert dead[0].original is not None
        lost = InboundMessage.from_avro(dead[0].original)
        assert (lost.destination, lost.text, lost.tenant_id) == ("69999", "who is this", None)
        assert all(json.loads(c.body).get("destination") != "69999" for c in calls.calls)

        async with running_api(settings) as api:
            async def page(tenant: str, **query: object) -> tuple[int, dict[str, Any]]:
                path = "/v1/inbound?" + "&".join(f"{k}={v}" for k, v in query.items())
                status, body, _ = await api.request("GET", path, key=keys[tenant])
                return status, body

            async def listed(tenant: str, count: int) -> dict[str, Any]:
                deadline = time.monotonic() + TIMEOUT_S
                while True:  # 503 while the store loads, then the messages
                    status, body = await page(tenant, limit=10)
                    if status == 200 and len(body["messages"]) == count:
                        return body
                    assert status in (200, 503), body
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{tenant}: {status} {body}")
                    await asyncio.sleep(0.05)

            acme_listed = await listed("acme-bank", 2)
            assert [m["text"] for m in acme_listed["messages"]] == ["Hello acme", "again"]
            assert [m["inbound_id"] for m in acme_listed["messages"]] == [
                m["inbound_id"] for m in acme]  # the webhook's ids
            for tenant, text in (("shopfast", " Stop "), ("promo-blast", "quiet please")):
                [only] = (await listed(tenant, 1))["messages"]
                assert (only["tenant_id"], only["text"]) == (tenant, text)
            assert (await listed("shopfast", 1))["messages"][0]["keyword"] == "OPT_OUT"

            # Pages: one at a time, then nothing new; the cursor works on any process.
            status, first = await page("acme-bank", limit=1)
            assert status == 200 and first["has_more"] is True
            assert [m["text"] for m in first["messages"]] == ["Hello acme"]
            status, second = await page("acme-bank", limit=1, cursor=first["next_cursor"])
            assert [m["text"] for m in second["messages"]] == ["again"]
            assert second["has_more"] is False
            status, third = await page("acme-bank", cursor=second["next_cursor"])
            assert (status, third["messages"], third["next_cursor"]) == (
                200, [], second["next_cursor"])
            status, later = await page("acme-bank", since="2999-01-01T00:00:00Z")
            assert (status, later["messages"]) == (200, [])
            # Refusals with their codes.
            status, body = await page("acme-bank", cursor="not-a-cursor")
            assert (status, body["code"]) == (400, "INVALID_CURSOR")
            status, body = await page("acme-bank", limit=1001)
            assert (status, body["code"]) == (422, "INVALID_REQUEST")
            status, body, _ = await api.request("GET", "/v1/inbound")
            assert (status, body["code"]) == (401, "UNAUTHENTICATED")
    finally:
        hooks.stop()
        sender.stop()
        for thread in threads:
            thread.join(30)
        sim.stop()
    assert not any(thread.is_alive() for thread in threads)

    for call in calls.calls:
        tenant = call.path.removesuffix("-mo").removesuffix("-dlr")
        assert verify_signature(SECRETS[tenant], call.headers["X-Smsflow-Signature"], call.body,
                                now=call.received_at, tolerance_s=5)
        assert call.headers["X-Smsflow-Event"] == "mo"
        assert call.headers["X-Smsflow-Delivery-Id"] == json.loads(call.body)["inbound_id"]
    assert not [c for c in calls.calls if c.path.startswith("promo-blast")]
