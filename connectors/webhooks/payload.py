"""The JSON body and headers of one webhook request (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from connectors.webhooks.signing import DELIVERY_ID_HEADER, SIGNATURE_HEADER, sign
from schemas.models import DeliveryReport

USER_AGENT = "smsflow-webhooks/1"


def _iso_utc(value: datetime) -> str:
    # Reports carry aware UTC datetimes; normalise anyway so the body never depends on the
    # decoder's timezone handling. Milliseconds: the Avro type is timestamp-millis.
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def report_document(report: DeliveryReport) -> dict[str, Any]:
    """The report's fields as JSON values: enums by name, timestamps ISO-8601 UTC."""
    document: dict[str, Any] = {}
    for name, value in report.model_dump(mode="python").items():
        if isinstance(value, datetime):
            document[name] = _iso_utc(value)
        elif hasattr(value, "value"):  # enums
            document[name] = value.value
        else:
            document[name] = value
    return document


def report_body(report: DeliveryReport) -> bytes:
    """Serialised once per report: retries send (and sign) the very same bytes."""
    return json.dumps(report_document(report), separators=(",", ":"), sort_keys=True).encode()


def request_headers(secret: str, delivery_id: str, body: bytes, now: float) -> dict[str, str]:
    """Headers of one attempt; the signature's timestamp is the attempt's, not the first's."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        DELIVERY_ID_HEADER: delivery_id,
        SIGNATURE_HEADER: sign(secret, body, now),
    }
