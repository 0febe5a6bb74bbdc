"""A schema-registry outage is transient, never a permanent decode error: every reader waits it
out (schemas/retrying.py) where a bad record would be rejected or skipped."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from schemas import retrying
from schemas.codec import DecodeError
from schemas.models import ConfigRecord, RouteHealth
from schemas.wire import RegistryUnavailableError, SchemaRegistryError
from smsflow.config import config_read
from tests.paths import REPO_ROOT
from tests.unit.schemas.test_wire import model_sample

ROOT = REPO_ROOT


class _Flaky:
    """``from_avro`` fails ``outages`` times with the registry down, then decodes."""

    def __init__(self, outages: int, error: Exception | None = None) -> None:
        self.outages = outages
        self.error = error
        self.calls = 0
        self.record = model_sample("RouteHealth")

    def from_avro(self, data: bytes | None) -> RouteHealth:
        self.calls += 1
        if self.error is not None:
            raise self.error
        if self.calls <= self.outages:
            raise RegistryUnavailableError("connection refused")
        assert isinstance(self.record, RouteHealth)
        return self.record


def test_outage_is_not_a_permanent_decode_error() -> None:
    assert not issubclass(RegistryUnavailableError, DecodeError)
    assert not issubclass(RegistryUnavailableError, ValueError)
    assert issubclass(RegistryUnavailableError, SchemaRegistryError)
    assert RegistryUnavailableError("x").reason_code == "REGISTRY_UNAVAILABLE"


def test_blocking_decode_waits_out_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("schemas.retrying.time.sleep", slept.append)
    flaky = _Flaky(outages=3)
    assert retrying.decode_blocking(flaky, b"x") is flaky.record  # type: ignore[arg-type]
    assert flaky.calls == 4
    assert slept == [0.5, 1.0, 2.0]


def test_async_decode_waits_out_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("schemas.retrying.asyncio.sleep", fake_sleep)
    flaky = _Flaky(outages=2)
    assert asyncio.run(retrying.decode(flaky, b"x")) is flaky.record  # type: ignore[arg-type]
    assert slept == [0.5, 1.0]


def test_a_bad_record_is_not_retried() -> None:
    flaky = _Flaky(outages=0, error=DecodeError("UNDECODABLE", "corrupt"))
    with pytest.raises(DecodeError):
        retrying.decode_blocking(flaky, b"x")  # type: ignore[arg-type]
    assert flaky.calls == 1


def test_config_reader_waits_for_the_registry_and_drops_only_bad_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before the split, the config reader treated an outage as an absent record (and the
    sender then ran with an SMSC or route missing)."""
    monkeypatch.setattr("schemas.retrying.time.sleep", lambda _delay: None)
    good = model_sample("ConfigRecord")
    data = good.to_avro()
    calls = {"n": 0}
    real = ConfigRecord.from_avro

    def down_twice(value: bytes | None) -> ConfigRecord:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RegistryUnavailableError("connection refused")
        return real(value)

    monkeypatch.setattr(ConfigRecord, "from_avro", down_twice)
    assert config_read.decode_or_drop("limits/platform", data, 0) == good
    assert calls["n"] == 3
    assert config_read.decode_or_drop("limits/platform", b"\xc3\x01garbage", 1) is None


def _from_avro_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr == "from_avro"
    ]


def test_long_running_readers_decode_through_the_retrying_helpers() -> None:
    """A bare ``Model.from_avro`` in a reader lets an outage escape as a crash (or, before the
    split, into an ``except DecodeError`` that rejected the record). Dev tooling is exempt."""
    exempt = {"smsflow/devstack/harness.py"}
    offenders = {
        str(path.relative_to(ROOT)): lines
        for package in ("pipeline", "connectors", "smsflow")
        for path in sorted((ROOT / package).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in exempt and "devstack" not in path.parts
        and (lines := _from_avro_calls(path))
    }
    assert offenders == {}
