"""The project's Kafka clients against a SASL_SSL listener (issue 14).

A private broker (temp home, free ports; the shared broker is never touched) is started with
``sasl_ssl_port``: a self-signed CA and SCRAM user made by smsflow/devstack/broker_sasl.py.
Clients are configured only through Settings (``SMSFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` …)
and the builders of smsflow/kafka_clients.py / kafka_security.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

from smsflow.devstack.broker import LocalBroker
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import free_port, isolated_settings, prepared_stack
from smsflow.kafka_clients import producer_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from tests.integration.secure_kafka import (
    DEADLINE_S,
    consume_one,
    faust_then_aiokafka,
    new_topic,
    produce_one,
    sasl_settings,
)
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    home = tmp_path_factory.mktemp("sasl-broker")
    local = LocalBroker(home, free_port(), free_port(), sasl_ssl_port=free_port())
    local.exit_with_starter = True  # a killed test run must not leave it behind
    try:
        local.start(90)
        yield local
    finally:
        local.stop(30)


def test_the_sasl_ssl_listener_sits_next_to_plaintext(broker: LocalBroker) -> None:
    assert broker.sasl_ssl_port in broker.ports()
    props = broker.config.properties()
    assert f"SASL_SSL://127.0.0.1:{broker.sasl_ssl_port}" in props["listeners"]
    assert props["inter.broker.listener.name"] == "PLAINTEXT"


def test_confluent_round_trip_over_scram_sha_512(broker: LocalBroker, tmp_path: Path) -> None:
    settings = sasl_settings(broker, tmp_path)
    topic = new_topic(settings)
    produce_one(settings, topic, b"over-sasl-ssl")
    assert consume_one(settings, topic) == b"over-sasl-ssl"


def test_aiokafka_and_faust_clients_over_sasl_ssl(broker: LocalBroker, tmp_path: Path) -> None:
    settings = sasl_settings(broker, tmp_path)
    topic = new_topic(settings)
    assert asyncio.run(faust_then_aiokafka(settings, topic)) == b"from-faust"


def test_plain_mechanism_is_accepted_too(broker: LocalBroker, tmp_path: Path) -> None:
    settings = sasl_settings(broker, tmp_path).model_copy(update={"kafka_sasl_mechanism": "PLAIN"})
    topic = new_topic(settings)
    produce_one(settings, topic, b"plain")


def test_a_wrong_password_is_refused_clearly_and_quickly(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """librdkafka reports the refusal through error_cb at once (a request alone would only
    time out with a transport error): the error names the credentials, within seconds."""
    settings = sasl_settings(broker, tmp_path, password="not-the-password")
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
    secured = sasl_settings(broker, tmp_path)
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
