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
    "QUOTA_EXCEEDED": "The tenant has used its daily quota of message parts.",
    "UNSUPPORTED_DESTINATION": (
        "The destination is a valid number but not SMS-capable (fixed line, toll free, premium "
        "rate, shared cost, VoIP, pager, UAN, voicemail, personal or non-geographic)."
    ),
    "ROUTES_EXHAUSTED": "Every eligible route failed for the message (failover exhausted).",
    "EMPTY_BODY": "The message body is empty.",
    "INVALID_SOURCE": "The sender id is not a valid short code, number or alphanumeric id.",
    "MESSAGE_TOO_LONG": "The body needs more segments than the platform allows.",
    "UNKNOWN_SMSC": "The route names an SMSC this sender has no connection for.",
    "RECEIPT_UNPARSEABLE": "A deliver_sm receipt could not be parsed.",
    "RECEIPT_UNMATCHED": "A receipt matched no message we sent within its retry window.",
    "RECEIPT_NO_ID": "A receipt carried no message id (neither TLV nor text).",
    "RECEIPT_BAD_ID": "A receipt's message id does not parse in the SMSC's id format.",
    "RECEIPT_NO_STATE": "A receipt carried no usable state (no message_state TLV, no stat:).",
    "RECEIPT_BAD_TLV": "A receipt's state TLV was malformed and there was no text to fall back to.",
    "OPTED_OUT": (
        "The subscriber sent the tenant an opt-out keyword (STOP) and did not opt back in."
    ),
    "MO_UNKNOWN_DESTINATION": (
        "An MO message's destination address is no tenant's number or short code."
    ),
    "WEBHOOK_REJECTED": (
        "The tenant's webhook refused a delivery report or MO message for good (HTTP 4xx other "
        "than 408/429, or a redirect); it was not retried."
    ),
    "WEBHOOK_GAVE_UP": (
        "The tenant's webhook did not accept a delivery report or MO message within its retry "
        "budget (5xx, 408, 429, timeouts or connection errors until max_retry_s ran out)."
    ),
}


def describe(reason_code: str) -> str:
    return REASONS.get(reason_code, "Unlisted reason code.")
