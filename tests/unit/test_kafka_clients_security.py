"""Every Kafka client the production code creates goes through the security-aware builders.

A client configured from a bare ``settings.kafka_bootstrap`` (or a hand-written
``bootstrap.servers``) would connect in plaintext against a SASL_SSL cluster: this test keeps
the builders (smsflow/kafka_clients.py) the only way in."""

from __future__ import annotations

import re
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from pipeline.app import build_app
from smsflow.devstack.stack import stack_env
from smsflow.kafka_clients import aiokafka_config, client_config, producer_config
from smsflow.kafka_security import KafkaConnection, kafka_connection
from smsflow.settings import Settings
from tests.paths import REPO_ROOT

# Where a bare bootstrap is right: the settings themselves, the builders, faust's broker URL
# (its security goes in broker_credentials, next to it), and dev tooling on the local broker.
ALLOWED = {
    "smsflow/settings.py", "smsflow/kafka_security.py", "smsflow/kafka_clients.py",
    "pipeline/app.py", "smsflow/devstack/broker.py", "smsflow/devstack/demo.py",
    "smsflow/devstack/harness.py", "smsflow/devstack/stack.py",
}
BARE = re.compile(r"\.kafka_bootstrap\b|[\"']bootstrap\.servers[\"']|\bbootstrap_servers=")


def test_no_production_client_is_built_from_a_bare_bootstrap() -> None:
    offenders = []
    for package in ("smsflow", "pipeline", "connectors", "api"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if rel in ALLOWED:
                continue
            offenders += [
                f"{rel}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1)
                if BARE.search(line)
            ]
    assert offenders == []


def test_the_faust_app_gets_broker_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _sasl(monkeypatch).model_copy(update={"home": tmp_path})
    credentials = build_app(settings).app.conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("u", "pw")


def _sasl(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("KAFKA_PW", "pw")
    return Settings(
        kafka_bootstrap="k:9094", kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="u", kafka_sasl_password=SecretStr("env:KAFKA_PW"),
    )


def test_builders_carry_security(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = kafka_connection(_sasl(monkeypatch))
    assert isinstance(conn, KafkaConnection)
    for config in (client_config(conn, **{"group.id": "g"}), producer_config(conn)):
        assert config["bootstrap.servers"] == "k:9094"
        assert config["security.protocol"] == "sasl_plaintext"
        assert config["sasl.password"] == "pw"
    assert producer_config(conn)["partitioner"] == "murmur2_random"
    aio = aiokafka_config(conn, group_id="g")
    assert aio["bootstrap_servers"] == "k:9094"
    assert aio["sasl_plain_password"] == "pw"
    assert aio["group_id"] == "g"
    assert client_config("h:1") == {"bootstrap.servers": "h:1", "security.protocol": "plaintext",
                                    "socket.nagle.disable": True}


def test_child_processes_get_the_security_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _sasl(monkeypatch)
    monkeypatch.setenv("SMSFLOW_KAFKA_SSL_CA_FILE", "/stale/ca.pem")  # the parent's, not ours
    env = stack_env(settings)
    assert env["SMSFLOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["SMSFLOW_KAFKA_SASL_USERNAME"] == "u"
    assert env["SMSFLOW_KAFKA_SASL_PASSWORD"] == "env:KAFKA_PW"  # the reference, not the value
    assert "SMSFLOW_KAFKA_SSL_CA_FILE" not in env


def test_librdkafka_clients_send_small_requests_at_once() -> None:
    """Nagle's algorithm off (TCP_NODELAY) for every confluent-kafka client, as the broker,
    the Java client and aiokafka have it."""
    assert client_config("127.0.0.1:9092")["socket.nagle.disable"] is True
    assert producer_config("127.0.0.1:9092")["socket.nagle.disable"] is True
