"""Webhook signatures: ``X-Smsflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The MAC covers ``f"{t}.".encode() + body``, so a receiver that checks the timestamp against its
own clock also refuses a captured request replayed later (Stripe's scheme, which receivers
already know). Pure functions with the time passed in: ``verify_signature`` is meant to be copied
into a receiver as it is (it needs only the standard library).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Smsflow-Signature"
DELIVERY_ID_HEADER = "X-Smsflow-Delivery-Id"
EVENT_HEADER = "X-Smsflow-Event"  # "report" or "mo", the body's "type"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, now: float) -> str:
    """The header value for ``body`` sent at ``now`` (unix seconds)."""
    timestamp = int(now)
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, now: float, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and its timestamp is within
    ``tolerance_s`` of ``now``. ``body`` must be the raw request bytes, not re-serialised JSON.

    Several ``v1=`` entries are accepted (any may match), so a sender can sign with an old and a
    new secret while a secret is being rotated.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    # compare_digest: the time taken must not tell an attacker how many characters matched.
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
