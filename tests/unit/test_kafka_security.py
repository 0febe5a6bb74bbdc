"""Kafka security settings → each client library's configuration (smsflow/kafka_security.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from pydantic import ValidationError

from smsflow.config.secrets import MASK
from smsflow.kafka_security import (
    aiokafka_security,
    confluent_security,
    faust_credentials,
    security_of,
)
from smsflow.settings import Settings

CA = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")


def _sasl_ssl(**extra: object) -> Settings:
    fields: dict[str, object] = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": "smsflow",
        "kafka_sasl_password": "env:TEST_KAFKA_PASSWORD",
        "kafka_ssl_ca_file": CA,
    }
    return Settings(**(fields | extra))  # type: ignore[arg-type]


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol() -> None:
    sec = security_of(Settings())
    assert confluent_security(sec) == {"security.protocol": "plaintext"}
    assert aiokafka_security(sec) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(sec) is None


def test_sasl_ssl_maps_to_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KAFKA_PASSWORD", "s3cret")
    sec = security_of(_sasl_ssl())
    assert confluent_security(sec) == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "smsflow",
        "sasl.password": "s3cret",
        "ssl.ca.location": str(CA),
    }
    aio = aiokafka_security(sec)
    assert isinstance(aio.pop("ssl_context"), ssl.SSLContext)
    assert aio == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "smsflow",
        "sasl_plain_password": "s3cret",
    }
    creds = faust_credentials(sec)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL"
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert (creds.username, creds.password) == ("smsflow", "s3cret")
    assert "s3cret" not in repr(sec)


def test_sasl_plaintext_plain_has_no_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KAFKA_PASSWORD", "pw")
    settings = _sasl_ssl(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
        kafka_ssl_ca_file=None,
    )
    sec = security_of(settings)
    assert "ssl.ca.location" not in confluent_security(sec)
    assert "ssl_context" not in aiokafka_security(sec)
    creds = faust_credentials(sec)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_PLAINTEXT"


def test_ssl_only_gives_faust_ssl_credentials() -> None:
    sec = security_of(Settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=CA))
    assert confluent_security(sec) == {"security.protocol": "ssl", "ssl.ca.location": str(CA)}
    assert isinstance(faust_credentials(sec), faust.SSLCredentials)


def test_password_from_a_file_and_masked_in_dumps(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("from-file\n")
    settings = _sasl_ssl(kafka_sasl_password=f"file:{secret}")
    assert security_of(settings).password == "from-file"
    literal = _sasl_ssl(kafka_sasl_password="literal-pw")
    assert literal.model_dump(mode="json")["kafka_sasl_password"] == MASK


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs SMSFLOW_KAFKA_SASL_USERNAME"),
        (
            {"kafka_sasl_username": "u", "kafka_sasl_password": "env:X"},
            "does not use SASL",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": CA},
            "go together",
        ),
        ({"kafka_ssl_ca_file": CA}, "does not use TLS"),
        ({"kafka_security_protocol": "TLS"}, "SASL_SSL"),
    ],
)
def test_incomplete_security_settings_are_refused_clearly(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**fields)  # type: ignore[arg-type]
