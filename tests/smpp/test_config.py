"""Simulator configuration models (no TCP; lives with the simulator tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.smsc_sim import SimulatorConfig, load_config

pytestmark = pytest.mark.smpp

ROOT = Path(__file__).resolve().parents[2]


def test_sample_config_loads() -> None:
    config = load_config(ROOT / "config" / "smsc-sim.yaml")
    assert {a.system_id for a in config.accounts} == {"smsc-uk", "smsc-de", "smsc-us"}
    assert config.default_profile in config.profiles
    assert config.profiles["uk"].throttle_tps == 200


def test_defaults() -> None:
    config = SimulatorConfig()
    assert config.receipt_format == "both"
    assert config.message_id_format == "hex"
    assert set(config.profiles) == {"default"}  # created when missing
    assert load_config(None).accounts[0].system_id == "smsflow"


def test_default_profile_name_is_configurable() -> None:
    config = SimulatorConfig.model_validate({"default_profile": "rest",
                                             "profiles": {"uk": {"prefixes": ["+44"]}}})
    assert set(config.profiles) == {"uk", "rest"}
    assert config.profiles["uk"].prefixes == ("44",)


@pytest.mark.parametrize(
    "data",
    [
        {"accounts": [{"system_id": "a", "password": "x"}, {"system_id": "a", "password": "y"}]},
        {"accounts": [{"system_id": "x" * 16, "password": "x"}]},
        {"accounts": [{"system_id": "a", "password": "123456789"}]},
        {"accounts": [{"system_id": "a", "bind_types": ["outbind"]}]},
        {"profiles": {"a": {"prefixes": ["44"]}, "b": {"prefixes": ["44"]}}},
        {"profiles": {"a": {"prefixes": [""]}}},
        {"profiles": {"a": {"delivery_ratio": 1.5}}},
        {"profiles": {"a": {"failure_status": []}}},
        {"profiles": {"a": {"failure_status": [{"stat": "DELIVRD"}]}}},
        {"profiles": {"a": {"failure_status": [{"stat": "UNDELIV", "err": 1000}]}}},
        {"profiles": {"a": {"throttle_tps": -1}}},
        {"profiles": {"a": {"latency_ms": 5}}},  # typo: unknown keys are rejected
        {"message_id_format": "uuid"},
        {"receipt_format": "xml"},
    ],
)
def test_invalid_configs_are_rejected(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SimulatorConfig.model_validate(data)


def test_yaml_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mapping"):
        load_config(path)
