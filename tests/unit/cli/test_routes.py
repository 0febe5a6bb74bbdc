"""``smsflow routes explain`` (smsflow.cli.routes), on YAML files and a stubbed config topic."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from smsflow.cli import routes as routes_cli
from smsflow.config.models import PlatformConfig
from smsflow.config.store import load_yaml
from smsflow.kafka_security import KafkaTarget, as_connection
from tests.paths import REPO_ROOT

CONFIG = {
    "tenants": [
        {"id": "acme", "name": "Acme", "tier": "premium", "rate_limit_pps": 10},
        {"id": "bulkco", "name": "Bulk Co", "tier": "economy", "rate_limit_pps": 10},
    ],
    "operators": [
        {"id": "gb-ee", "name": "EE", "country": "GB", "mcc_mnc": "23430",
         "prefixes": ["+44740"], "test_prefixes": ["+447700900"]},
    ],
    "smscs": [
        {"id": "smsc-lon", "host": "127.0.0.1", "port": 2775, "system_id": "lon",
         "password": "pw", "region": "eu-west"},
        {"id": "smsc-nyc", "host": "127.0.0.1", "port": 2775, "system_id": "nyc",
         "password": "pw", "region": "us-east"},
    ],
    "routes": [
        {"id": "uk-direct", "smsc": "smsc-lon", "operators": ["gb-ee"], "tps": 100,
         "cost": 0.03, "bind_class": "dedicated", "baseline_latency_ms": 300},
        {"id": "uk-bulk", "smsc": "smsc-nyc", "operators": ["gb-ee"], "tps": 100,
         "cost": 0.01, "bind_class": "bulk", "tiers": ["economy"]},
    ],
}


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="smsflow")
    routes_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    return path


def test_explain_prints_the_route_fallbacks_and_exclusions(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["routes", "explain", "--to", "+44 7401 234567", "--tenant", "acme",
                "--type", "OTP", "--config", str(config_file)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Destination  +447401234567 → gb-ee (GB, mobile, operator by prefix)" in out
    assert "ROUTED via uk-direct (smsc-lon)" in out
    assert "uk-bulk              tier premium not allowed (economy)" in out
    assert "Weights      cost 0.25 · quality 4 · latency 2" in out


def test_explain_json_lists_choices_in_order(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["routes", "explain", "--to", "+447401234567", "--tenant", "bulkco",
                "--type", "marketing", "--parts", "2", "--config", str(config_file), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["outcome"] == "ROUTED"
    assert [c["route"] for c in result["choices"]] == ["uk-bulk", "uk-direct"]
    assert result["cost"] == pytest.approx(0.02)
    assert result["destination"]["operator"] == "gb-ee"
    assert result["excluded"] == {}


def test_health_file_changes_the_decision(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    health = tmp_path / "health.yaml"
    health.write_text("uk-bulk: {state: down}\n", encoding="utf-8")
    code = run(["routes", "explain", "--to", "+447401234567", "--tenant", "bulkco",
                "--config", str(config_file), "--health", str(health), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["route"] == "uk-direct"
    assert result["excluded"] == {"uk-bulk": "DOWN (report)"}


@pytest.mark.parametrize(
    ("destination", "tenant", "code_text"),
    [
        ("+442071234567", "acme", "REJECTED UNSUPPORTED_DESTINATION"),
        ("12345", "acme", "REJECTED INVALID_NUMBER"),
        ("+33612345678", "acme", "REJECTED UNKNOWN_OPERATOR"),
        ("+447401234567", "ghost", "REJECTED UNKNOWN_TENANT"),
    ],
)
def test_rejections_exit_1_with_the_reason(
    config_file: Path, capsys: pytest.CaptureFixture[str], destination: str, tenant: str,
    code_text: str,
) -> None:
    code = run(["routes", "explain", "--to", destination, "--tenant", tenant,
                "--config", str(config_file)])
    assert code == 1
    assert code_text in capsys.readouterr().out


def test_test_range_number_is_routed(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["routes", "explain", "--to", "+447700900123", "--tenant", "acme",
                "--config", str(config_file)]) == 0
    assert "operator by test-range" in capsys.readouterr().out


def test_unusable_files_exit_2(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["routes", "explain", "--to", "+447401234567", "--tenant", "acme",
                "--config", str(tmp_path / "missing.yaml")]) == 2
    bad_health = tmp_path / "health.yaml"
    bad_health.write_text("uk-bulk: {state: sideways}\n", encoding="utf-8")
    assert run(["routes", "explain", "--to", "+447401234567", "--tenant", "acme",
                "--config", str(config_file), "--health", str(bad_health)]) == 2
    assert "uk-bulk" in capsys.readouterr().out


def test_from_topic_reads_the_live_config(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import smsflow.config.kafka_io as kafka_io

    seen: list[tuple[str, str]] = []

    def fake_read_config(bootstrap: KafkaTarget, topic: str) -> PlatformConfig:
        seen.append((as_connection(bootstrap).bootstrap, topic))
        return load_yaml(config_file)

    monkeypatch.setenv("SMSFLOW_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("SMSFLOW_TOPIC_PREFIX", "t1.")
    monkeypatch.setattr(kafka_io, "read_config", fake_read_config)
    assert run(["routes", "explain", "--to", "+447401234567", "--tenant", "acme",
                "--from-topic"]) == 0
    assert seen == [("broker:9092", "t1.sms.config")]
    assert "ROUTED via uk-direct" in capsys.readouterr().out


def test_config_and_from_topic_are_exclusive(config_file: Path) -> None:
    with pytest.raises(SystemExit):
        run(["routes", "explain", "--to", "+447401234567", "--tenant", "acme",
             "--config", str(config_file), "--from-topic"])


def test_default_config_is_the_platform_sample(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert run(["routes", "explain", "--to", "+447401234567", "--tenant", "acme-bank",
                "--type", "otp"]) == 0
    assert "ROUTED via " in capsys.readouterr().out
