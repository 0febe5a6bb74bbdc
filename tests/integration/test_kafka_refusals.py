"""Refused credentials stop every process; mutual TLS works and refuses (issue 14).

One private broker for the module (temp home, free ports; the shared broker at 127.0.0.1:9092
is never touched) with a SASL_SSL listener and an SSL listener requiring a client certificate
(``ssl_port``, smsflow/devstack/broker_mtls.py). SCRAM-SHA-256 sessions on it last
``REAUTH_MS`` (KIP-368 ``connections.max.reauth.ms``): a client whose password changed on the
broker must log in again within that time, which is how the run-time test below makes the
worker meet its rotated password without restarting the broker. SCRAM-SHA-512 and the other
tests are not affected.

Each process kind runs as a real subprocess (``python -m smsflow.cli``) given only settings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import secrets
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiokafka.client
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.app import build_app
from pipeline.faust_patches import auth_refusal
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.broker import BrokerConfig, LocalBroker
from smsflow.devstack.broker_sasl import upsert_scram_user
from smsflow.devstack.harness import free_port, isolated_settings
from smsflow.devstack.lifeline import tied_env
from smsflow.devstack.stack import stack_env
from smsflow.kafka_auth import verify_credentials
from smsflow.kafka_clients import aiokafka_config, client_config
from smsflow.kafka_refusal import EXIT_KAFKA_AUTH, KafkaAuthError
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import CONFIG, apply_topics, topic_name
from tests.integration.secure_kafka import (
    DEADLINE_S,
    consume_one,
    faust_then_aiokafka,
    mtls_settings,
    new_topic,
    produce_one,
    sasl_settings,
)
from tests.integration.waiting import wait_until
from tests.paths import PLATFORM_CONFIG, REPO_ROOT

PROCESS_DEADLINE_S = 30.0
"""A refused process must have exited by then (measured: ~2 s, most of it imports)."""
REAUTH_MS = 5000


class _ReauthBroker(LocalBroker):
    """The local broker with SCRAM-SHA-256 sessions limited to ``REAUTH_MS``."""

    @property
    def config(self) -> BrokerConfig:
        base = super().config
        reauth = ("listener.name.sasl_ssl.scram-sha-256.connections.max.reauth.ms",
                  str(REAUTH_MS))
        return dataclasses.replace(base, sasl_ssl=(*base.sasl_ssl, reauth))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    home = tmp_path_factory.mktemp("refusal-broker")
    local = _ReauthBroker(home, free_port(), free_port(), sasl_ssl_port=free_port(),
                          ssl_port=free_port())
    local.exit_with_starter = True  # a killed test run must not leave it behind
    try:
        local.start(90)
        yield local
    finally:
        local.stop(30)


# -- wrong credentials: every process kind exits, naming the setting --------------------------

PROCESSES = {
    "worker": ["worker"],
    "sender": ["sender", "--metrics-port", "0"],
    "webhooks": ["webhooks", "run", "--metrics-port", "0"],
    "api": ["api"],
    "kafka-exporter": ["kafka-exporter", "--port", "0"],
}


def _run_refused(settings: Settings, argv: list[str]) -> tuple[int, float, str]:
    env = stack_env(settings)
    env |= {"SMSFLOW_API_KEY_PEPPER": secrets.token_urlsafe(24),
            "SMSFLOW_API_PORT": str(free_port())}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "smsflow.cli", *argv], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=PROCESS_DEADLINE_S + 30, check=False,
    )
    return result.returncode, time.monotonic() - started, result.stdout + result.stderr


@pytest.mark.parametrize("kind", sorted(PROCESSES))
def test_a_wrong_password_ends_the_process_with_the_setting_named(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    settings = sasl_settings(broker, tmp_path, password="not-the-password")
    code, took, output = _run_refused(settings, PROCESSES[kind])
    assert code == EXIT_KAFKA_AUTH, output[-3000:]
    assert took < PROCESS_DEADLINE_S
    refusals = [line for line in output.splitlines() if "Kafka refused" in line]
    assert len(refusals) == 1, output[-3000:]  # one line, not one per retry
    assert "SASL authentication failed" in refusals[0]
    assert "SMSFLOW_KAFKA_SASL_PASSWORD" in refusals[0]
    assert "not-the-password" not in output


def test_a_worker_without_its_client_certificate_exits(broker: LocalBroker,
                                                        tmp_path: Path) -> None:
    settings = mtls_settings(broker, tmp_path, with_cert=False)
    code, took, output = _run_refused(settings, PROCESSES["worker"])
    assert code == EXIT_KAFKA_AUTH, output[-3000:]
    assert took < PROCESS_DEADLINE_S
    assert "SMSFLOW_KAFKA_SSL_CERT_FILE" in output


def test_aiokafka_refusals_reach_the_worker_s_handler(
    broker: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The patch the worker installs sees a real refusal of an aiokafka connection (which
    aiokafka itself only logs and retries)."""
    monkeypatch.setattr(aiokafka.client, "create_conn", aiokafka.client.create_conn)
    settings = sasl_settings(broker, tmp_path, password="not-the-password")
    conn = kafka_connection(settings)
    reports: list[str] = []
    auth_refusal.install(conn.security, reports.append)

    async def start() -> None:
        producer = AIOKafkaProducer(**aiokafka_config(conn))
        try:
            await asyncio.wait_for(producer.start(), DEADLINE_S)
        finally:
            await producer.stop()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(start())
    assert reports and "SMSFLOW_KAFKA_SASL_PASSWORD" in reports[0]


def _rotation_settings(broker: LocalBroker, tmp_path: Path) -> tuple[Settings, Any]:
    """Settings of a fresh SCRAM-SHA-256 user (sessions end after REAUTH_MS) with topics and
    the platform configuration applied, and that user's material (to change its password)."""
    material = dataclasses.replace(broker.sasl_ssl_material(), user=f"rot-{uuid.uuid4().hex[:6]}",
                                   password=secrets.token_urlsafe(12))
    upsert_scram_user(_operator(broker), material)
    secured = sasl_settings(broker, tmp_path, password=material.password, user=material.user)
    base = isolated_settings(secured.kafka_bootstrap, tmp_path / "stack", "rotate", partitions=1)
    settings = base.model_copy(update={
        name: getattr(secured, name) for name in Settings.model_fields
        if name.startswith("kafka_") and name != "kafka_exporter_port"
    } | {"kafka_sasl_mechanism": "SCRAM-SHA-256"})
    apply_topics(settings)
    config = load_yaml(PLATFORM_CONFIG)  # its SMSCs on a port where nobody answers: no bind
    config = config.model_copy(update={"smscs": tuple(
        smsc.model_copy(update={"port": free_port()}) for smsc in config.smscs)})
    apply_config(kafka_connection(settings), topic_name(settings, CONFIG), config)
    return settings, material


def _operator(broker: LocalBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})  # PLAINTEXT: the operator's


def _running(kind: str, settings: Settings, api_port: int) -> Callable[[], bool]:
    """When the process is connected and working: its consumer group is stable (the API: it
    answers /readyz with 200)."""
    if kind == "api":
        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/readyz", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False
        return ready
    group = settings.app_id if kind == "worker" else f"{settings.app_id}-{kind}"
    admin = AdminClient(client_config(kafka_connection(settings)))
    return lambda: _group_stable(admin, group)


@pytest.mark.parametrize("kind", ["worker", "sender", "webhooks", "api"])
def test_a_password_rotated_under_a_running_process_ends_it(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    """The process started with the right password; the broker's password changes; at its next
    login (the session ends after REAUTH_MS) the process exits, naming the setting."""
    settings, material = _rotation_settings(broker, tmp_path)
    api_port = free_port()
    env = stack_env(settings) | {"SMSFLOW_API_KEY_PEPPER": secrets.token_urlsafe(24),
                                 "SMSFLOW_API_PORT": str(api_port)}
    argv = ["worker", "--loglevel", "warn"] if kind == "worker" else PROCESSES[kind]
    log_path = tmp_path / f"{kind}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "smsflow.cli", *argv],
            env=tied_env(env), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        running = _running(kind, settings, api_port)
        wait_until(lambda: process.poll() is not None or running(),
                   timeout_s=90, what=f"the {kind} to be running")
        assert process.poll() is None, log_path.read_text()[-3000:]
        upsert_scram_user(_operator(broker), dataclasses.replace(material, password="rotated"))
        rotated = time.monotonic()
        code = process.wait(timeout=REAUTH_MS / 1000 + PROCESS_DEADLINE_S)
        took = time.monotonic() - rotated
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    output = log_path.read_text()
    assert code == EXIT_KAFKA_AUTH, output[-3000:]
    assert took < REAUTH_MS / 1000 + PROCESS_DEADLINE_S
    refusals = [line for line in output.splitlines() if "Kafka refused" in line]
    assert len(refusals) == 1, output[-3000:]
    assert "SMSFLOW_KAFKA_SASL_PASSWORD" in refusals[0]


def _group_stable(admin: AdminClient, group: str) -> bool:
    """Whether ``group`` has members and no rebalance pending. Asked again on errors: until the
    first group exists, the broker is still creating ``__consumer_offsets``."""
    try:
        found = admin.describe_consumer_groups([group])[group].result(5)
    except (KafkaException, concurrent.futures.TimeoutError):
        return False
    return bool(found.state == ConsumerGroupState.STABLE and found.members)


# -- mutual TLS ------------------------------------------------------------------------------


def test_confluent_round_trip_with_a_client_certificate(broker: LocalBroker,
                                                        tmp_path: Path) -> None:
    settings = mtls_settings(broker, tmp_path)
    topic = new_topic(settings, "mtls")
    produce_one(settings, topic, b"over-mtls")
    assert consume_one(settings, topic) == b"over-mtls"


def test_faust_and_aiokafka_with_a_client_certificate(broker: LocalBroker,
                                                      tmp_path: Path) -> None:
    settings = mtls_settings(broker, tmp_path)
    topic = new_topic(settings, "mtls")
    assert asyncio.run(faust_then_aiokafka(settings, topic)) == b"from-faust"


def test_without_a_client_certificate_confluent_is_refused_quickly(
    broker: LocalBroker, tmp_path: Path
) -> None:
    conn = kafka_connection(mtls_settings(broker, tmp_path, with_cert=False))
    started = time.monotonic()
    with pytest.raises(KafkaAuthError, match="SMSFLOW_KAFKA_SSL_CERT_FILE"):
        verify_credentials(conn, timeout_s=DEADLINE_S)
    assert time.monotonic() - started < DEADLINE_S


def test_without_a_client_certificate_faust_and_aiokafka_fail_quickly(
    broker: LocalBroker, tmp_path: Path
) -> None:
    settings = mtls_settings(broker, tmp_path, with_cert=False)

    async def faust_start() -> None:
        producer = build_app(settings).app.producer
        try:
            await asyncio.wait_for(producer.start(), DEADLINE_S)
        finally:
            await producer.stop()

    async def aiokafka_start() -> None:
        producer = AIOKafkaProducer(**aiokafka_config(kafka_connection(settings)))
        try:
            await asyncio.wait_for(producer.start(), DEADLINE_S)
        finally:
            await producer.stop()

    for start in (faust_start, aiokafka_start):
        started = time.monotonic()
        with pytest.raises(KafkaConnectionError):
            asyncio.run(start())
        assert time.monotonic() - started < DEADLINE_S
