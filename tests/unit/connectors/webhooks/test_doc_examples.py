"""The two requests shown in docs/webhooks.md are what the connector sends: the bodies are
the serialisation of records, and the signatures verify."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from connectors.webhooks.payload import mo_body, report_body
from connectors.webhooks.signing import verify_signature
from schemas.models import DeliveryReport, InboundKeyword, InboundMessage
from tests.paths import REPO_ROOT

SECRET = "3f9c2a7e5b1d4c8fa0e6b2d9c7f1a4e8"  # the value the doc names
_REQUEST = re.compile(r"```http\nPOST (\S+) HTTP/1.1\n(.*?)\n\n(.*?)\n```", re.S)


def _examples() -> dict[str, tuple[dict[str, str], bytes]]:
    text = (REPO_ROOT / "docs" / "webhooks.md").read_text()
    found = {}
    for match in _REQUEST.finditer(text):
        headers = dict(line.split(": ", 1) for line in match.group(2).splitlines())
        body = match.group(3).replace("\n ", "").encode()  # unwrapped: one line
        found[headers["X-Smsflow-Event"]] = (headers, body)
    return found


@pytest.mark.parametrize("kind", ["report", "mo"])
def test_documented_signature_verifies(kind: str) -> None:
    headers, body = _examples()[kind]
    assert json.loads(body)["type"] == kind
    assert verify_signature(SECRET, headers["X-Smsflow-Signature"], body, now=1_760_000_000)


def test_documented_bodies_are_the_connector_s_serialisation() -> None:
    examples = _examples()
    report = json.loads(examples["report"][1])
    del report["type"]
    assert report_body(DeliveryReport.model_validate(report)) == examples["report"][1]
    mo = json.loads(examples["mo"][1])
    message = InboundMessage(
        inbound_id=mo["inbound_id"], tenant_id=mo["tenant_id"], source=mo["source"],
        destination=mo["destination"], text=mo["text"], data_coding=mo["data_coding"],
        keyword=InboundKeyword(mo["keyword"]), smsc_id=mo["smsc_id"], bind="smsc-uk#0",
        received_at=datetime(2025, 10, 9, 8, 53, 25, 412000, tzinfo=UTC),
    )
    assert mo_body(message) == examples["mo"][1]
