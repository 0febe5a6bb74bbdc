"""The security runbook's webhook-secret rotation, run as written (docs/runbooks/
security-incident.md#webhook-secrets), against the real broker, the real ``smsflow webhooks``
process and a real HTTP receiver:

the tenant's ``webhook.secret`` is an ``env:`` reference; the receiver accepts the old and the
new secret while the rotation lasts; the operator changes the value behind the reference and
restarts the connector. Every report arrives exactly as signed: those before the restart with
the old secret, those after with the new one, none refused, none lost, and ``sms.config`` holds
the reference only.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from connectors.webhooks.signing import SIGNATURE_HEADER, verify_signature
from schemas.models import DeliveryReport, DeliveryStatus, Rejection
from smsflow.config.kafka_io import apply_config
from smsflow.config.models import PlatformConfig, Tenant, Webhook
from smsflow.devstack.harness import isolated_settings, read_all
from smsflow.devstack.stack import ManagedProcess, stack_env
from smsflow.kafka_clients import producer_config
from smsflow.settings import Settings
from smsflow.topics import CONFIG, DLR, REJECTED, apply_topics, topic_name
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.slow

REFERENCE = "SMSFLOW_RUNBOOK_WEBHOOK_SECRET"
OLD, NEW = "old-webhook-secret-0001", "new-webhook-secret-0002"
BATCH = 20


class RotatingReceiver(ThreadingHTTPServer):
    """Accepts a request signed with either secret (as the runbook asks of the tenant) and
    records which one verified; anything else is answered 401."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        #: message id -> the secrets its deliveries verified with ("old", "new"); a report
        #: replayed after the restart (at-least-once) may come twice.
        self.verified: dict[str, set[str]] = {}
        self.refused = 0


class _Handler(BaseHTTPRequestHandler):
    server: RotatingReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        header = self.headers.get(SIGNATURE_HEADER, "")
        now = time.time()
        which = next((name for name, secret in (("old", OLD), ("new", NEW))
                      if verify_signature(secret, header, body, now)), None)
        with self.server.lock:
            if which is None:
                self.server.refused += 1
            else:
                message_id = json.loads(body)["message_id"]
                self.server.verified.setdefault(message_id, set()).add(which)
        self.send_response(401 if which is None else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return  # quiet


@pytest.fixture
def receiver() -> Iterator[RotatingReceiver]:
    server = RotatingReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _reports(settings: Settings, label: str) -> set[str]:
    now = datetime.now(UTC)
    topic = topic_name(settings, DLR)
    producer = Producer(producer_config(settings.kafka_bootstrap))
    ids = set()
    for index in range(BATCH):
        report = DeliveryReport(
            message_id=f"{label}-{index}-{uuid.uuid4().hex[:8]}", tenant_id="acme",
            route_id="uk-direct", smsc_id="smsc-uk", operator_id="gb-ee", country="GB",
            destination="+447700900123", parts=1, status=DeliveryStatus.DELIVERED,
            error_code=0, smsc_message_ids=[str(index)], submitted_at=now, sent_at=now,
            done_at=now)
        ids.add(report.message_id)
        producer.produce(topic, key=b"acme", value=report.to_avro(topic))
    assert producer.flush(30) == 0
    return ids


def _connector(settings: Settings, secret: str, log: Path) -> ManagedProcess:
    process = ManagedProcess(
        "webhooks", [sys.executable, "-m", "smsflow.cli", "webhooks", "run", "--metrics-port", "0"],
        log)
    process.start({**stack_env(settings), REFERENCE: secret})
    return process


def test_webhook_secret_rotation_as_the_runbook_says(
    kafka_bootstrap: str, tmp_path: Path, receiver: RotatingReceiver
) -> None:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "hookrotate", partitions=1)
    apply_topics(settings)
    hook = Webhook(url=f"http://127.0.0.1:{receiver.server_address[1]}/hook",
                   secret=SecretStr(f"env:{REFERENCE}"))
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG), PlatformConfig(
        tenants=(Tenant(id="acme", name="ACME", rate_limit_pps=10, webhook=hook),)))
    log = tmp_path / "webhooks.log"

    connector = _connector(settings, OLD, log)
    try:
        before = _reports(settings, "before")
        wait_until(lambda: before <= receiver.verified.keys(), timeout_s=60,
                   what="the reports before the rotation delivered")
        # Runbook steps 1-2: the new value behind the reference, then restart the connector.
        connector.stop()
        connector = _connector(settings, NEW, log)
        after = _reports(settings, "after")
        wait_until(lambda: after <= receiver.verified.keys(), timeout_s=60,
                   what="the reports after the rotation delivered")
    finally:
        connector.stop()
    assert all("old" in receiver.verified[m] for m in before)
    assert all(receiver.verified[m] == {"new"} for m in after), "signed with the new secret"
    assert receiver.refused == 0
    assert not [Rejection.from_avro(v) for v in read_all(settings, REJECTED)], (
        "no report refused or given up during the rotation")
    config_bytes = b"".join(read_all(settings, CONFIG))
    assert REFERENCE.encode() in config_bytes
    assert OLD.encode() not in config_bytes and NEW.encode() not in config_bytes
