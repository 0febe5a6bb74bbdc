"""Refused Kafka logins: which librdkafka errors are refusals, the one line, and the exit."""

from __future__ import annotations

import logging
import os

import pytest
from confluent_kafka import KafkaError

from smsflow import kafka_auth, kafka_refusal
from smsflow.kafka_clients import client_config, producer_config
from smsflow.kafka_refusal import EXIT_KAFKA_AUTH, confluent_error, refusal, report_refusal
from smsflow.kafka_security import KafkaConnection, KafkaSecurity

SASL = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "smsflow", "pw", "/ca.pem")
MTLS = KafkaSecurity("SSL", ca_file="/ca.pem", cert_file="/c.pem", key_file="/k.pem")


class _Exited(Exception):
    pass


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A fresh guard for the test, and ``os._exit`` / ``logging.shutdown`` made harmless."""
    exits: list[int] = []

    def fake_exit(code: int) -> None:
        exits.append(code)
        raise _Exited

    monkeypatch.setattr(kafka_refusal, "_guard", kafka_refusal._Guard())
    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(logging, "shutdown", lambda: None)
    return exits


def test_a_sasl_refusal_names_the_settings_and_never_the_password() -> None:
    reason = refusal(SASL, KafkaError._AUTHENTICATION, "invalid credentials")
    assert reason is not None
    assert "SMSFLOW_KAFKA_SASL_USERNAME" in reason and "SMSFLOW_KAFKA_SASL_PASSWORD" in reason
    assert "'smsflow'" in reason and "SCRAM-SHA-512" in reason
    assert "pw" not in reason.replace("SMSFLOW_KAFKA_SASL_PASSWORD", "")


def test_tls_refusals_name_the_certificate_or_ca_settings() -> None:
    cert = refusal(MTLS, KafkaError._TRANSPORT,
                   "Receive failed: ssl/tls alert bad certificate: SSL alert number 42")
    assert cert is not None and "SMSFLOW_KAFKA_SSL_CERT_FILE" in cert
    ca = refusal(MTLS, KafkaError._SSL, "SSL handshake failed: certificate verify failed")
    assert ca is not None and "SMSFLOW_KAFKA_SSL_CA_FILE" in ca


@pytest.mark.parametrize(("code", "text"), [
    (KafkaError._TRANSPORT, "Connect to ipv4#127.0.0.1:9094 failed: Connection refused"),
    (KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"),
    (KafkaError._TIMED_OUT, "timed out"),
    # The connection dropped mid-handshake: filed under _AUTHENTICATION, but no verdict.
    (KafkaError._AUTHENTICATION, "GroupCoordinator: SASL SCRAM-SHA-256 mechanism handshake "
     "failed: Local: Broker transport failure: broker's supported mechanisms: (n/a) (after "
     "0ms in state DOWN)"),
])
def test_an_unreachable_broker_is_not_a_refusal(code: int, text: str) -> None:
    assert refusal(SASL, code, text) is None


def test_unarmed_a_refusal_is_logged_once(guard: list[int],
                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="smsflow.kafka_refusal"):
        report_refusal("SASL authentication failed")
        report_refusal("SASL authentication failed")
    assert [r.message for r in caplog.records] == [
        "Kafka refused this process: SASL authentication failed"]
    assert guard == []


def test_armed_a_refusal_ends_the_process(guard: list[int]) -> None:
    kafka_refusal.arm()
    on_error = confluent_error(SASL)
    on_error(KafkaError(KafkaError._TRANSPORT, "Connection refused"))  # retried, not fatal
    assert guard == []
    with pytest.raises(_Exited):
        on_error(KafkaError(KafkaError._AUTHENTICATION, "invalid credentials"))
    assert guard == [EXIT_KAFKA_AUTH]


def test_secured_confluent_clients_report_refusals_plaintext_ones_need_not() -> None:
    secured = KafkaConnection("h:9094", SASL)
    assert callable(client_config(secured)["error_cb"])
    assert callable(producer_config(secured)["error_cb"])
    assert "error_cb" not in client_config("h:9092")
    mine = print
    assert client_config(secured, error_cb=mine)["error_cb"] is mine


def test_the_startup_check_arms_even_without_anything_to_check(guard: list[int]) -> None:
    kafka_auth.check_at_startup(KafkaConnection("127.0.0.1:1"))  # plaintext: no request
    assert kafka_refusal._guard.armed


def test_an_unreachable_broker_is_no_verdict_at_startup() -> None:
    """Nothing listens: no refusal, so the check gives up after its timeout and the process
    starts as before (waiting for the broker)."""
    conn = KafkaConnection("127.0.0.1:1", KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "u", "p"))
    assert kafka_auth.verify_credentials(conn, timeout_s=1.0) is False
