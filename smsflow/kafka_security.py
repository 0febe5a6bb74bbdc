"""Kafka client security (TLS, SASL) from settings, in each client library's own terms.

Every Kafka client the project creates (confluent-kafka producers, consumers and admin clients;
aiokafka consumers; the faust app) takes its connection from here, so one set of
``SMSFLOW_KAFKA_*`` settings reaches them all (docs/configuration.md#kafka-security). The SASL
password is a secret reference, resolved here, when a client is built.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import faust
from faust.types.auth import CredentialsT

from smsflow.config.secrets import resolve
from smsflow.settings import Settings


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def __repr__(self) -> str:  # never print the password
        return f"KafkaSecurity(protocol={self.protocol!r}, username={self.username!r})"


def security_of(settings: Settings) -> KafkaSecurity:
    password = None
    if settings.kafka_sasl_password is not None:
        password = resolve(
            settings.kafka_sasl_password, what="SMSFLOW_KAFKA_SASL_PASSWORD"
        ).get_secret_value()
    return KafkaSecurity(
        protocol=settings.kafka_security_protocol,
        mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_sasl_username,
        password=password,
        ca_file=_str(settings.kafka_ssl_ca_file),
        cert_file=_str(settings.kafka_ssl_cert_file),
        key_file=_str(settings.kafka_ssl_key_file),
    )


def _str(path: object) -> str | None:
    return None if path is None else str(path)


def confluent_security(sec: KafkaSecurity) -> dict[str, Any]:
    """librdkafka properties: merge into any producer, consumer or admin client config."""
    conf: dict[str, Any] = {"security.protocol": sec.protocol.lower()}
    if sec.sasl:
        conf |= {
            "sasl.mechanism": sec.mechanism,
            "sasl.username": sec.username,
            "sasl.password": sec.password,
        }
    if sec.tls:
        if sec.ca_file:
            conf["ssl.ca.location"] = sec.ca_file
        if sec.cert_file:
            conf["ssl.certificate.location"] = sec.cert_file
            conf["ssl.key.location"] = sec.key_file
    return conf


def ssl_context(sec: KafkaSecurity) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=sec.ca_file)
    if sec.cert_file:
        context.load_cert_chain(sec.cert_file, sec.key_file)
    return context


def aiokafka_security(sec: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaConsumer`` / ``AIOKafkaProducer`` / admin clients."""
    kwargs: dict[str, Any] = {"security_protocol": sec.protocol}
    if sec.sasl:
        kwargs |= {
            "sasl_mechanism": sec.mechanism,
            "sasl_plain_username": sec.username,
            "sasl_plain_password": sec.password,
        }
    if sec.tls:
        kwargs["ssl_context"] = ssl_context(sec)
    return kwargs


def faust_credentials(sec: KafkaSecurity) -> CredentialsT | None:
    """``faust.App(broker_credentials=...)``; None for plaintext."""
    if sec.sasl:
        return faust.SASLCredentials(
            username=sec.username,
            password=sec.password,
            mechanism=sec.mechanism,
            ssl_context=ssl_context(sec) if sec.tls else None,
        )
    if sec.tls:
        return faust.SSLCredentials(ssl_context(sec))
    return None


@dataclass(frozen=True)
class KafkaConnection:
    """Where a client connects and how: what every client builder takes, not a bare string."""

    bootstrap: str
    security: KafkaSecurity = KafkaSecurity()


KafkaTarget = str | KafkaConnection
"""A bare bootstrap string is a plaintext connection (dev tooling and tests)."""


def kafka_connection(settings: Settings) -> KafkaConnection:
    return KafkaConnection(settings.kafka_bootstrap, security_of(settings))


def as_connection(target: KafkaTarget) -> KafkaConnection:
    return KafkaConnection(target) if isinstance(target, str) else target
