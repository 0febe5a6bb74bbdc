"""Fixtures for every unit test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemas import wire


@pytest.fixture(autouse=True)
def _no_schema_registry_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Unit tests pick their encoding themselves. ``SMSFLOW_SCHEMA_REGISTRY_URL``, exported to
    run the integration tests against a registry, would switch every codec to the Confluent
    framing and fail the single-object-encoding tests; a test that wants it sets it."""
    monkeypatch.delenv(wire.ENV_URL, raising=False)
    wire.reset_cache()
    yield
    wire.reset_cache()
