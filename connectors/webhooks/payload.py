"""The JSON body and headers of one webhook request (pure).

Two kinds of payload share one format: a delivery report (``"type": "report"``, from
``sms.dlr``) and an inbound MO message (``"type": "mo"``, from ``sms.inbound``). Each body is
the record's fields plus ``type``, so a receiver that gets both on one URL tells them apart
before anything else (docs/webhooks.md#the-request).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel

from connectors.webhooks.signing import (
    DELIVERY_ID_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    sign,
)
from schemas.models import DeliveryReport, InboundMessage

USER_AGENT = "smsflow-webhooks/1"

Kind = Literal["report", "mo"]
REPORT: Final[Kind] = "report"
MO: Final[Kind] = "mo"
KINDS: Final[tuple[Kind, ...]] = (REPORT, MO)

#: InboundMessage fields a tenant never sees: ``reason`` is always null on a message that has a
#: tenant (unattributed ones are dead-lettered, not posted), ``bind`` names our own connection.
_MO_INTERNAL: Final = frozenset({"reason", "bind"})


def _iso_utc(value: datetime) -> str:
    # Records carry aware UTC datetimes; normalise anyway so the body never depends on the
    # decoder's timezone handling. Milliseconds: the Avro type is timestamp-millis.
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _document(record: BaseModel, kind: Kind, leave_out: frozenset[str] = frozenset()
              ) -> dict[str, Any]:
    """The record's fields as JSON values (enums by name, timestamps ISO-8601 UTC) and
    ``type``."""
    document: dict[str, Any] = {"type": kind}
    for name, value in record.model_dump(mode="python").items():
        if name in leave_out:
            continue
        if isinstance(value, datetime):
            document[name] = _iso_utc(value)
        elif hasattr(value, "value"):  # enums
            document[name] = value.value
        else:
            document[name] = value
    return document


def report_document(report: DeliveryReport) -> dict[str, Any]:
    return _document(report, REPORT)


def mo_document(message: InboundMessage) -> dict[str, Any]:
    return _document(message, MO, _MO_INTERNAL)


def _serialise(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def report_body(report: DeliveryReport) -> bytes:
    """Serialised once per report: retries send (and sign) the very same bytes."""
    return _serialise(report_document(report))


def mo_body(message: InboundMessage) -> bytes:
    """Serialised once per MO message, like :func:`report_body`."""
    return _serialise(mo_document(message))


def request_headers(
    secret: str, delivery_id: str, body: bytes, now: float, kind: Kind = REPORT
) -> dict[str, str]:
    """Headers of one attempt; the signature's timestamp is the attempt's, not the first's."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        DELIVERY_ID_HEADER: delivery_id,
        EVENT_HEADER: kind,
        SIGNATURE_HEADER: sign(secret, body, now),
    }
