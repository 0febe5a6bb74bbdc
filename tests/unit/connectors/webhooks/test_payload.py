"""The webhook request body and headers, and the tenant webhook configuration."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr, ValidationError

from connectors.webhooks.payload import report_body, request_headers
from connectors.webhooks.signing import verify_signature
from schemas.models import DeliveryReport, DeliveryStatus
from smsflow.config.models import PlatformConfig, Tenant, Webhook
from smsflow.config.store import fold, to_records

SECRET = "whsec-0123456789abcdef"


def _report(**overrides: object) -> DeliveryReport:
    fields: dict[str, object] = {
        "message_id": "6b0c7f0e-1", "tenant_id": "acme", "client_ref": None,
        "route_id": "uk-direct", "smsc_id": "smsc-uk", "operator_id": "gb-ee", "country": "GB",
        "destination": "+447700900123", "parts": 2, "status": DeliveryStatus.UNDELIVERABLE,
        "error_code": 1, "reason": "receipt UNDELIVERABLE", "smsc_message_ids": ["17", "18"],
        "submitted_at": datetime(2025, 10, 9, 8, 53, 20, 123000, tzinfo=UTC),
        "sent_at": datetime(2025, 10, 9, 8, 53, 21, tzinfo=UTC),
        "done_at": datetime(2025, 10, 9, 9, 53, 22, tzinfo=timezone(timedelta(hours=1))),
    }
    fields.update(overrides)
    return DeliveryReport.model_validate(fields)


def test_body_has_every_report_field_with_utc_iso_timestamps() -> None:
    document = json.loads(report_body(_report()))
    assert set(document) == {"type", *DeliveryReport.model_fields}
    assert document["type"] == "report"
    assert document["status"] == "UNDELIVERABLE"
    assert document["submitted_at"] == "2025-10-09T08:53:20.123Z"
    assert document["done_at"] == "2025-10-09T08:53:22.000Z"  # normalised to UTC
    assert document["smsc_message_ids"] == ["17", "18"]
    assert document["client_ref"] is None


def test_body_survives_an_avro_round_trip_unchanged() -> None:
    report = _report()
    assert report_body(DeliveryReport.from_avro(report.to_avro())) == report_body(report)


def test_accepted_report_is_posted_with_its_status_and_reason() -> None:
    """No receipt requested: the tenant still gets the report, saying ACCEPTED."""
    report = _report(status=DeliveryStatus.ACCEPTED, error_code=None,
                     reason="no receipt requested")
    document = json.loads(report_body(DeliveryReport.from_avro(report.to_avro())))
    assert document["status"] == "ACCEPTED"
    assert document["reason"] == "no receipt requested"
    assert document["error_code"] is None


def test_dlr_cli_lines_and_rows_show_accepted() -> None:
    from smsflow.cli.dlr import _line, _row

    report = _report(status=DeliveryStatus.ACCEPTED, error_code=None,
                     reason="no receipt requested")
    assert " ACCEPTED " in _line(report)
    assert _row(report)["status"] == "ACCEPTED"


def test_headers_carry_the_delivery_id_and_a_verifiable_signature() -> None:
    body = report_body(_report())
    headers = request_headers(SECRET, "6b0c7f0e-1", body, 1_760_000_000.0)
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Smsflow-Delivery-Id"] == "6b0c7f0e-1"
    assert headers["X-Smsflow-Event"] == "report"
    assert verify_signature(SECRET, headers["X-Smsflow-Signature"], body, 1_760_000_010.0)


def _tenant(**webhook: object) -> Tenant:
    return Tenant.model_validate(
        {"id": "acme", "name": "Acme", "rate_limit_pps": 10, "webhook": webhook}
    )


def test_webhook_defaults() -> None:
    webhook = _tenant(url="https://hooks.acme.example/dlr", secret=SECRET).webhook
    assert webhook == Webhook(url="https://hooks.acme.example/dlr", secret=SecretStr(SECRET),
                              timeout_s=5.0, max_retry_s=86_400.0, max_in_flight=4)
    assert SECRET not in repr(webhook)  # kept out of logs


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"url": "ftp://acme.example/x", "secret": SECRET}, "http"),
        ({"url": "https:///no-host", "secret": SECRET}, "host"),
        ({"url": "acme.example/dlr", "secret": SECRET}, "http"),
        ({"url": "https://acme.example/#x", "secret": SECRET}, "fragment"),
        ({"url": "https://acme.example/", "secret": "short"}, "16 characters"),
        ({"url": "https://acme.example/", "secret": SECRET, "timeout_s": 0}, "greater than 0"),
        ({"url": "https://acme.example/", "secret": SECRET, "max_in_flight": 0}, "greater than"),
        ({"url": "https://acme.example/", "secret": SECRET, "max_retry_s": -1}, "greater than"),
        ({"url": "https://acme.example/", "secret": SECRET, "verb": "PUT"}, "Extra inputs"),
    ],
)
def test_invalid_webhooks_are_refused(fields: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        _tenant(**fields)


def test_tenants_without_a_webhook_are_still_valid() -> None:
    tenant = Tenant(id="plain", name="Plain", rate_limit_pps=1)
    assert tenant.webhook is None


def test_webhook_survives_the_config_topic_round_trip() -> None:
    config = PlatformConfig(tenants=(_tenant(url="http://127.0.0.1:8080/h", secret=SECRET),))
    records = to_records(config, datetime(2025, 10, 9, tzinfo=UTC))
    assert fold(records.items()) == config
