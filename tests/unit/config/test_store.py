from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.models import ConfigKind, ConfigRecord
from smsflow.config.models import PlatformConfig, RateLimits
from smsflow.config.store import ConfigError, fold, load_yaml, now_utc, snapshot_from, to_records
from tests.paths import REPO_ROOT

REPO = REPO_ROOT
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def _through_topic(records: dict[str, ConfigRecord]) -> list[tuple[str, ConfigRecord | None]]:
    return [(key, ConfigRecord.from_avro(record.to_avro())) for key, record in records.items()]


def _by_id(config: PlatformConfig) -> dict[str, object]:
    """The config with each collection ordered by id (the topic has no order)."""
    return {
        "tenants": sorted(config.tenants, key=lambda t: t.id),
        "operators": sorted(config.operators, key=lambda o: o.id),
        "smscs": sorted(config.smscs, key=lambda s: s.id),
        "routes": sorted(config.routes, key=lambda r: r.id),
        "limits": config.limits,
    }


def test_sample_config_survives_the_topic_round_trip() -> None:
    config = load_yaml(REPO / "config" / "platform.yaml")
    assert _by_id(fold(_through_topic(to_records(config, NOW)))) == _by_id(config)


def test_platform_limits_travel_as_their_own_record() -> None:
    config = PlatformConfig(limits=RateLimits(global_pps=5000, per_destination_per_minute=3))
    records = to_records(config, NOW)
    assert "limits/platform" in records
    assert fold(_through_topic(records)).limits.global_pps == 5000


def test_tombstone_removes_an_object() -> None:
    config = load_yaml(REPO / "config" / "platform.yaml")
    records = _through_topic(to_records(config, NOW))
    records.append(("tenant/suspended-co", None))
    assert fold(records).tenant("suspended-co") is None


def test_dangling_reference_on_the_topic_is_a_config_error() -> None:
    config = load_yaml(REPO / "config" / "platform.yaml")
    records = _through_topic(to_records(config, NOW))
    records.append(("smsc/smsc-uk", None))  # routes still name it
    with pytest.raises(ConfigError, match="unknown smsc"):
        fold(records)


def test_invalid_yaml_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("smscs:\n  - {id: x, host: h, port: 1, system_id: waytoolongsystemid, "
                   "password: p, region: r}\n")
    with pytest.raises(ConfigError, match="system_id"):
        load_yaml(bad)


def test_an_invalid_record_on_the_topic_is_a_config_error_naming_it() -> None:
    """A record that does not validate (another writer, another version) must not crash the
    watcher: ConfigError, which keeps the previous snapshot."""
    bad = ConfigRecord(kind=ConfigKind.TENANT, id="x", document='{"id": "x", "tier": "gold"}',
                       updated_at=now_utc())
    with pytest.raises(ConfigError, match="tenant/x"):
        snapshot_from({"tenant/x": bad})
    with pytest.raises(ConfigError, match="invalid config record 'tenant/x'"):
        snapshot_from({"tenant/x": bad.model_copy(update={"document": "not json"})})
