"""The hot contracts' generated Avro readers and writers by schema key, written by
`python -m schemas.codegen --write`: do not edit (schemas/codegen.py)."""

# ruff: noqa
from __future__ import annotations

from typing import Any

from schemas.generated import submit_request, routed_message, submit_outcome, receipt_event, part_outcome, delivery_report

READERS: dict[str, Any] = {
    submit_request.SCHEMA_KEY: submit_request.read,
    routed_message.SCHEMA_KEY: routed_message.read,
    submit_outcome.SCHEMA_KEY: submit_outcome.read,
    receipt_event.SCHEMA_KEY: receipt_event.read,
    part_outcome.SCHEMA_KEY: part_outcome.read,
    delivery_report.SCHEMA_KEY: delivery_report.read,
}
WRITERS: dict[str, Any] = {
    submit_request.SCHEMA_KEY: submit_request.write,
    routed_message.SCHEMA_KEY: routed_message.write,
    submit_outcome.SCHEMA_KEY: submit_outcome.write,
    receipt_event.SCHEMA_KEY: receipt_event.write,
    part_outcome.SCHEMA_KEY: part_outcome.write,
    delivery_report.SCHEMA_KEY: delivery_report.write,
}
