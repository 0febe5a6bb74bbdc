"""The project's Kafka clients against a SASL_SSL listener (issue 14).

A private broker (temp home, free ports; the shared broker is never touched) is started with
``sasl_ssl_port``: a self-signed CA and SCRAM user made by smsflow/devstack/broker_sasl.py.
Clients are configured only through Settings (``SMSFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` …)
and the builders of smsflow/kafka_clients.py / kafka_security.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import SecretStr

from pipeline.app import build_app
from smsflow.devstack.broker import LocalBroker
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import free_port, isolated_settings, prepared_stack
from smsflow.kafka_clients import aiokafka_config, client_config, producer_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

DEADLINE_S = 20.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    home = tmp_path_factory.mktemp("sasl-broker")
    local = LocalBroker(home, free_port(), free_port(), sasl_ssl_port=free_port())
    try:
        local.start(90)
        yield local
    finally:
        local.stop(30)


def _settings(broker: LocalBroker, tmp_path: Path, password: str | None = None) -> Settings:
    material = broker.sasl_ssl_material()
    secret = tmp_path / "kafka-password"
    secret.write_text(material.password if password is None else password)
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{broker.sasl_ssl_port}",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=material.user,
        kafka_sasl_password=SecretStr(f"file:{secret}"),
        kafka_ssl_ca_file=material.ca_file,
        home=tmp_path,
        app_id=f"sasl-{uuid.uuid4().hex[:8]}",
        partitions=1,
    )


def _topic(settings: Settings) -> str:
    name = f"sasl-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(kafka_connection(settings)))
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=DEADLINE_S)
    return name


def _produce(settings: Settings, topic: str, value: bytes) -> None:
    producer = Producer(producer_config(kafka_connection(settings)))
    producer.produce(topic, value, key=b"k")
    assert producer.flush(DEADLINE_S) == 0


def test_the_sasl_ssl_listener_sits_next_to_plaintext(broker: LocalBroker) -> None:
    assert broker.sasl_ssl_port in broker.ports()
    props = broker.config.properties()
    assert f"SASL_SSL://127.0.0.1:{broker.sasl_ssl_port}" in props["listeners"]
    assert props["inter.broker.listener.name"] == "PLAINTEXT"


def test_confluent_round_trip_over_scram_sha_512(broker: LocalBroker, tmp_path: Path) -> None:
    settings = _settings(broker, tmp_path)
    topic = _topic(settings)
    _produce(settings, topic, b"over-sasl-ssl")
    consumer = Consumer(client_config(
        kafka_connection(settings),
        **{"group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"},
    ))
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + DEADLINE_S
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is not None and message.error() is None
        assert message.value() == b"over-sasl-ssl"
    finally:
        consumer.close()


def test_aiokafka_and_faust_clients_over_sasl_ssl(broker: LocalBroker, tmp_path: Path) -> None:
    settings = _settings(broker, tmp_path)
    topic = _topic(settings)

    async def scenario() -> bytes | None:
        # faust: the worker's app, built from settings, sends through its own producer.
        worker = build_app(settings)
        producer = worker.app.producer
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"k", b"from-faust", partition=None,
                                         timestamp=None, headers=None)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, **aiokafka_config(
            kafka_connection(settings), group_id=f"a-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest",
        ))
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), DEADLINE_S)
            value: bytes | None = record.value
            return value
        finally:
            await consumer.stop()

    assert asyncio.run(scenario()) == b"from-faust"


def test_plain_mechanism_is_accepted_too(broker: LocalBroker, tmp_path: Path) -> None:
    settings = _settings(broker, tmp_path).model_copy(update={"kafka_sasl_mechanism": "PLAIN"})
    topic = _topic(settings)
    _produce(settings, topic, b"plain")


def test_a_wrong_password_is_refused_clearly_and_quickly(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """librdkafka reports the refusal through error_cb at once (a request alone would only
    time out with a transport error): the error names the credentials, within seconds."""
    settings = _settings(broker, tmp_path, password="not-the-password")
    errors: list[KafkaError] = []
    producer = Producer(producer_config(kafka_connection(settings), error_cb=errors.append))
    started = time.monotonic()
    while not errors and time.monotonic() - started < DEADLINE_S:
        producer.poll(0.2)
    assert errors, "no error within the deadline"
    assert errors[0].code() == KafkaError._AUTHENTICATION
    assert "invalid credentials" in errors[0].str()


@pytest.mark.slow
def test_the_whole_pipeline_runs_over_sasl_ssl(broker: LocalBroker, tmp_path: Path) -> None:
    """Simulator, faust worker (its agents consume over SASL_SSL) and sender as processes,
    given only the security settings (stack_env passes them on): every message reported."""
    base = isolated_settings(f"127.0.0.1:{broker.sasl_ssl_port}", tmp_path / "stack", "sasl")
    secured = _settings(broker, tmp_path)
    settings = base.model_copy(update={
        name: getattr(secured, name) for name in Settings.model_fields
        if name.startswith("kafka_") and name != "kafka_exporter_port"
    })
    with prepared_stack(settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG) as stack:
        warm_up(settings, timeout_s=120)
        result = run_flow(settings, make_traffic(200, seed=14), timeout_s=120)
        stack.check_alive()
    assert result.lost == 0, f"no terminal state for {result.missing[:5]}"
    assert result.duplicates == 0
