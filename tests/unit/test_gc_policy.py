"""smsflow/gc_policy.py and ``SMSFLOW_GC_THRESHOLDS``: parsed strictly, applied as given."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from smsflow.gc_policy import (
    DEFAULT_THRESHOLDS,
    PYTHON_THRESHOLDS,
    apply_thresholds,
    parse_thresholds,
)
from smsflow.settings import Settings


@pytest.fixture
def restored_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("default", DEFAULT_THRESHOLDS),
        (" Python ", PYTHON_THRESHOLDS),
        ("20000, 20, 50", (20_000, 20, 50)),
        ("700,10,10", (700, 10, 10)),
    ],
)
def test_thresholds_are_parsed(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_thresholds(text) == expected


@pytest.mark.parametrize("text", ["", "50000", "1,2", "1,2,3,4", "a,b,c", "-1,10,10", "0,10,10"])
def test_malformed_thresholds_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="gc thresholds"):
        parse_thresholds(text)


def test_settings_refuse_malformed_thresholds_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMSFLOW_GC_THRESHOLDS", "50000,50")
    with pytest.raises(ValidationError, match="gen0,gen1,gen2"):
        Settings()


def test_settings_default_to_the_measured_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSFLOW_GC_THRESHOLDS", raising=False)
    assert parse_thresholds(Settings().gc_thresholds) == (50_000, 50, 100)


@pytest.mark.usefixtures("restored_thresholds")
def test_applied_thresholds_reach_the_collector() -> None:
    apply_thresholds("12345,6,7")
    assert gc.get_threshold() == (12_345, 6, 7)


@pytest.mark.usefixtures("restored_thresholds")
def test_the_api_factory_sets_the_configured_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.app import app_from_env
    from smsflow import kafka_refusal

    # The factory arms the refusal guard (os._exit on a Kafka refusal): not in this process.
    monkeypatch.setattr(kafka_refusal, "_guard", kafka_refusal._Guard())
    monkeypatch.setenv("SMSFLOW_API_KEY_PEPPER", "gc-policy-test-pepper-0123456789")
    monkeypatch.setenv("SMSFLOW_GC_THRESHOLDS", "23456,7,8")
    app_from_env()
    assert gc.get_threshold() == (23_456, 7, 8)
