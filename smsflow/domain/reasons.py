"""Reason codes of rejections, in one table. Stable strings: analysts and alerts key on them."""

from __future__ import annotations

from typing import Final

REASONS: Final[dict[str, str]] = {
    "EMPTY_RECORD": "The record value was empty or null.",
    "UNDECODABLE": "The bytes are not an Avro single-object record of the expected contract.",
    "SCHEMA_MISMATCH": "Avro record of an unknown schema version or of another contract.",
    "INVALID_RECORD": "Decoded, but a field violates the contract (see detail).",
    "UNKNOWN_TENANT": "The tenant id is not configured.",
    "TENANT_QUARANTINED": "The tenant is quarantined; its traffic is refused until released.",
    "INVALID_NUMBER": "The destination is not a valid E.164 number.",
    "UNKNOWN_OPERATOR": "No configured operator owns the destination's prefix.",
    "NO_ROUTE": "No enabled route serves the operator for the tenant's tier.",
    "EMPTY_BODY": "The message body is empty.",
    "MESSAGE_TOO_LONG": "The body needs more segments than the platform allows.",
    "UNKNOWN_SMSC": "The route names an SMSC this sender has no connection for.",
    "RECEIPT_UNPARSEABLE": "A deliver_sm receipt could not be parsed.",
}


def describe(reason_code: str) -> str:
    return REASONS.get(reason_code, "Unlisted reason code.")
