"""Secrets as references (smsflow/config/secrets.py): resolution, validation, masking, and what
travels in sms.config."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from connectors.sender.service import SenderService
from connectors.webhooks.service import _resolved_hooks
from smsflow.config.cli import _cmd_check
from smsflow.config.models import PlatformConfig, Smsc, Webhook
from smsflow.config.secrets import MASK, SecretResolutionError, resolve
from smsflow.config.store import fold, load_yaml, to_records
from smsflow.settings import Settings
from tests.paths import REPO_ROOT

REPO = REPO_ROOT
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _smsc(password: str) -> Smsc:
    return Smsc.model_validate({"id": "smsc-uk", "host": "127.0.0.1", "port": 2775,
                                "system_id": "smsc-uk", "password": password,
                                "region": "eu-west"})


def test_env_reference_resolves_from_the_environment() -> None:
    value = resolve(SecretStr("env:UK_PASS"), what="w", environ={"UK_PASS": "s3cret"})
    assert value.get_secret_value() == "s3cret"


def test_file_reference_reads_a_mounted_secret(tmp_path: Path) -> None:
    mounted = tmp_path / "smsc-uk-password"
    mounted.write_text("s3cret\n", encoding="utf-8")  # `echo` adds the newline
    assert resolve(f"file:{mounted}", what="w").get_secret_value() == "s3cret"


def test_unresolvable_references_name_the_secret_not_the_value(tmp_path: Path) -> None:
    with pytest.raises(SecretResolutionError, match="smsc-uk password: environment variable"):
        resolve("env:NOT_SET_ANYWHERE", what="smsc-uk password", environ={})
    with pytest.raises(SecretResolutionError, match="cannot read"):
        resolve(f"file:{tmp_path / 'missing'}", what="hook")
    with pytest.raises(SecretResolutionError, match="longer than 8") as caught:
        resolve("env:P", what="p", environ={"P": "much-too-long"}, max_length=8)
    assert "much-too-long" not in str(caught.value)


def test_literal_is_its_own_value_and_keeps_its_old_limits() -> None:
    assert resolve("uk-pass", what="w").get_secret_value() == "uk-pass"
    with pytest.raises(ValidationError, match="at most 8"):
        _smsc("nine-char")
    with pytest.raises(ValidationError, match="at least 16"):
        Webhook.model_validate({"url": "https://h.example/x", "secret": "short"})


def test_malformed_references_are_refused_at_validation() -> None:
    with pytest.raises(ValidationError, match="not an environment variable name"):
        _smsc("env:not a name")
    with pytest.raises(ValidationError, match="must be absolute"):
        _smsc("file:relative/path")


def test_show_masks_literals_and_shows_references() -> None:
    literal, reference = _smsc("uk-pass"), _smsc("env:SMSC_UK_PASSWORD")
    assert json.loads(literal.model_dump_json())["password"] == MASK
    assert json.loads(reference.model_dump_json())["password"] == "env:SMSC_UK_PASSWORD"
    assert "uk-pass" not in repr(literal) and "uk-pass" not in str(literal.model_dump())


def test_sms_config_carries_the_reference_and_round_trips(caplog: pytest.LogCaptureFixture) -> None:
    config = load_yaml(REPO / "config" / "platform.yaml")
    referenced = config.model_copy(update={"smscs": tuple(
        s.model_copy(update={"password": SecretStr(f"env:PW_{i}")})
        for i, s in enumerate(config.smscs)
    )})
    records = to_records(referenced, NOW)
    documents = " ".join(r.document for r in records.values())
    assert "env:PW_0" in documents and "uk-pass" not in documents
    back = fold(list(records.items()))
    assert back.smsc("smsc-uk") == referenced.smsc("smsc-uk")
    assert back.literal_secrets() == []


def test_literal_secrets_are_listed_and_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    config = load_yaml(REPO / "config" / "platform.yaml")
    assert "smscs[smsc-uk].password" in config.literal_secrets()
    # Still accepted (old files), and still travel: apply warns on stderr, workers log once.
    assert "uk-pass" in to_records(config, NOW)["smsc/smsc-uk"].document
    caplog.set_level("WARNING", logger="smsflow.config.secrets")
    _smsc("new-lit")
    assert "literal value" in caplog.text
    assert "new-lit" not in caplog.text


def test_reference_config_needs_no_values_to_validate() -> None:
    raw = {"smscs": [{"id": "a", "host": "h", "port": 1, "system_id": "a",
                      "password": "file:/run/secrets/a", "region": "r"}]}
    config = PlatformConfig.model_validate(raw)
    assert config.smscs[0].password.get_secret_value() == "file:/run/secrets/a"


def test_the_sender_resolves_smsc_passwords_only_when_it_binds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configuration holds the reference; a missing value stops the sender at bind time with
    a message naming the SMSC (and no client is created)."""
    config = load_yaml(REPO / "config" / "platform.yaml")
    smsc = config.smscs[0].model_copy(update={"password": SecretStr("env:SMSFLOW_UNIT_PW")})
    settings = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="unit.", home=tmp_path)
    service = SenderService(settings, config, group_id="unit")
    monkeypatch.delenv("SMSFLOW_UNIT_PW", raising=False)
    with pytest.raises(SecretResolutionError, match=f"SMSC {smsc.id} password"):
        service._connections.add([smsc])
    assert smsc.id not in service._pools


def test_the_webhooks_connector_resolves_each_tenants_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mount = tmp_path / "acme-hook"
    mount.write_text("0123456789abcdef-from-a-mount\n", encoding="utf-8")
    config = load_yaml(REPO / "config" / "platform.yaml")
    tenant = config.tenants[0].model_copy(update={"webhook": Webhook.model_validate(
        {"url": "https://h.example/x", "secret": f"file:{mount}"})})
    config = config.model_copy(update={"tenants": (tenant,)})
    hooks = _resolved_hooks(config)
    assert hooks[tenant.id].secret.get_secret_value() == "0123456789abcdef-from-a-mount"
    assert config.tenants[0].webhook is not None
    assert config.tenants[0].webhook.secret.get_secret_value() == f"file:{mount}"  # unchanged
    mount.write_text("too-short", encoding="utf-8")
    with pytest.raises(SecretResolutionError, match="shorter than 16"):
        _resolved_hooks(config)


def test_config_check_warns_about_literal_secrets_on_stderr(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cmd_check(argparse.Namespace(file=REPO / "config" / "platform.yaml")) == 0
    captured = capsys.readouterr()
    assert "WARNING: smscs[smsc-uk].password is a literal secret" in captured.err
    assert "uk-pass" not in captured.err + captured.out
