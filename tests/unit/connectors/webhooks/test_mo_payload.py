"""MO messages on the tenant's webhook: the body, the headers and the per-tenant settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from connectors.webhooks.payload import mo_body, report_body, request_headers
from connectors.webhooks.signing import verify_signature
from schemas.models import InboundKeyword, InboundMessage
from smsflow.config.models import PlatformConfig, Tenant, Webhook
from smsflow.config.store import fold, to_records
from tests.unit.connectors.webhooks.test_payload import SECRET, _report

MO = InboundMessage(
    inbound_id="0b6f1c52-3d1e-4a8b-9f59-2f1f5c7c1a01", tenant_id="acme", source="+447700900123",
    destination="60001", text="STOP", data_coding=0, keyword=InboundKeyword.OPT_OUT,
    smsc_id="smsc-uk", bind="smsc-uk#0", received_at=datetime(2025, 10, 9, 8, 53, 20, 5000,
                                                               tzinfo=UTC),
)


def test_mo_body_is_typed_and_keeps_internal_fields_out() -> None:
    document = json.loads(mo_body(MO))
    assert document == {
        "type": "mo", "inbound_id": MO.inbound_id, "tenant_id": "acme",
        "source": "+447700900123", "destination": "60001", "text": "STOP", "data_coding": 0,
        "keyword": "OPT_OUT", "smsc_id": "smsc-uk", "received_at": "2025-10-09T08:53:20.005Z",
    }


def test_mo_and_report_bodies_are_told_apart_by_type() -> None:
    assert json.loads(mo_body(MO))["type"] == "mo"
    assert json.loads(report_body(_report()))["type"] == "report"


def test_mo_body_survives_an_avro_round_trip_and_non_ascii_text() -> None:
    message = MO.model_copy(update={"text": "ARRÊT ✋", "data_coding": 8})
    body = mo_body(InboundMessage.from_avro(message.to_avro()))
    assert body == mo_body(message)
    assert json.loads(body)["text"] == "ARRÊT ✋"


def test_mo_headers_name_the_kind_and_sign_the_body() -> None:
    body = mo_body(MO)
    headers = request_headers(SECRET, MO.inbound_id, body, 1_760_000_000.0, "mo")
    assert headers["X-Smsflow-Event"] == "mo"
    assert headers["X-Smsflow-Delivery-Id"] == MO.inbound_id
    signature = headers["X-Smsflow-Signature"]
    assert verify_signature(SECRET, signature, body, 1_760_000_001.0)
    assert not verify_signature(SECRET, signature, body + b" ", 1_760_000_001.0)


def _webhook(**fields: object) -> Webhook:
    tenant = Tenant.model_validate({"id": "acme", "name": "Acme", "rate_limit_pps": 10,
                                    "webhook": {"url": "https://h.example/dlr", "secret": SECRET,
                                                **fields}})
    assert tenant.webhook is not None
    return tenant.webhook


def test_mo_goes_to_the_webhook_url_by_default() -> None:
    webhook = _webhook()
    assert webhook.mo is True and webhook.mo_url is None
    assert webhook.mo_target() == "https://h.example/dlr"


def test_mo_may_have_its_own_url_or_be_switched_off() -> None:
    assert _webhook(mo_url="https://h.example/mo").mo_target() == "https://h.example/mo"
    assert _webhook(mo=False).mo_target() is None


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"mo_url": "ftp://h.example/mo"}, "http"),
        ({"mo_url": "https://h.example/mo#x"}, "fragment"),
        ({"mo": False, "mo_url": "https://h.example/mo"}, "mo is false"),
    ],
)
def test_invalid_mo_settings_are_refused(fields: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        _webhook(**fields)


def test_mo_settings_survive_the_config_topic_round_trip() -> None:
    tenant = Tenant.model_validate({"id": "acme", "name": "Acme", "rate_limit_pps": 10,
                                    "webhook": {"url": "https://h.example/dlr", "secret": SECRET,
                                                "mo_url": "https://h.example/mo"}})
    config = PlatformConfig(tenants=(tenant,))
    assert fold(to_records(config, datetime(2025, 10, 9, tzinfo=UTC)).items()) == config


def test_a_configuration_written_before_mo_existed_still_loads() -> None:
    """Compatibility: a stored webhook without the new fields reads with MO on, same URL."""
    old = {"url": "https://h.example/dlr", "secret": SECRET, "timeout_s": 5.0,
           "max_retry_s": 86400.0, "max_in_flight": 4}
    assert Webhook.model_validate(old).mo_target() == "https://h.example/dlr"


def test_a_webhook_without_mo_settings_is_stored_as_before_they_existed() -> None:
    """Rollout: the previous version forbids unknown fields, so defaults are not written."""
    stored = json.loads(_webhook().model_dump_json())
    assert set(stored) == {"url", "secret", "timeout_s", "max_retry_s", "max_in_flight"}
    assert json.loads(_webhook(mo=False).model_dump_json())["mo"] is False
    assert json.loads(_webhook(mo_url="https://h.example/mo").model_dump_json())["mo_url"] == (
        "https://h.example/mo")
