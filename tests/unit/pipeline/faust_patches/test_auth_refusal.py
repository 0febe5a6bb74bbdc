"""The aiokafka refusal patch: a refused SASL login is reported, then raised as before."""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka.client
import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

from pipeline.faust_patches import auth_refusal
from smsflow.kafka_security import KafkaSecurity

SASL = KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "smsflow", "pw")


def _failing(exc: Exception) -> Any:
    async def create_conn(*_args: Any, **_kwargs: Any) -> Any:
        raise exc

    return create_conn


def test_a_refused_login_is_reported_and_still_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiokafka.client, "create_conn",
                        _failing(SaslAuthenticationFailed("invalid credentials")))
    reports: list[str] = []
    auth_refusal.install(SASL, reports.append)
    with pytest.raises(SaslAuthenticationFailed):
        asyncio.run(aiokafka.client.create_conn("127.0.0.1", 9094))
    assert len(reports) == 1
    assert "SMSFLOW_KAFKA_SASL_PASSWORD" in reports[0] and "invalid credentials" in reports[0]


def test_other_connection_errors_are_aiokafka_s_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiokafka.client, "create_conn", _failing(KafkaConnectionError("closed")))
    reports: list[str] = []
    auth_refusal.install(SASL, reports.append)
    with pytest.raises(KafkaConnectionError):
        asyncio.run(aiokafka.client.create_conn("127.0.0.1", 9094))
    assert reports == []


def test_installing_twice_wraps_once(monkeypatch: pytest.MonkeyPatch) -> None:
    original = _failing(SaslAuthenticationFailed("no"))
    monkeypatch.setattr(aiokafka.client, "create_conn", original)
    first: list[str] = []
    second: list[str] = []
    auth_refusal.install(SASL, first.append)
    auth_refusal.install(SASL, second.append)
    assert aiokafka.client.create_conn.__wrapped_by_smsflow__ is original
    with pytest.raises(SaslAuthenticationFailed):
        asyncio.run(aiokafka.client.create_conn("127.0.0.1", 9094))
    assert (len(first), len(second)) == (0, 1)
