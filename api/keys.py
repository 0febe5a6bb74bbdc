"""API keys: format, storage form and verification (pure; no I/O, time passed in).

A key reads ``smsf_<key id>_<secret>``. The key id (16 hex digits) is public: it names the
record on the ``sms.api-keys`` topic and appears in ``smsflow tenants key list`` and logs. The
secret (32 random bytes, URL-safe base64) is printed once, at creation, and never stored: the
record holds ``HMAC-SHA256(pepper, secret)``, the pepper being a server secret outside Kafka
(:mod:`api.settings`). Verification recomputes the HMAC and compares in constant time.

A tenant may have several active keys (rotation without a gap: create the new key, move the
clients, revoke the old one). Revoking writes the record again with ``revoked_at`` set; the
compacted topic keeps the latest state of every key id, so who revoked what, and when, stays
visible.

>>> pepper = b"0123456789abcdef"
>>> key, record = new_key("acme", pepper, key_id="00112233aabbccdd", secret="s3cret", now=0.0)
>>> key
'smsf_00112233aabbccdd_s3cret'
>>> verify(record, parse_key(key), pepper)
True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final, NamedTuple

from pydantic import BaseModel, ConfigDict

KEY_PREFIX: Final = "smsf_"
_KEY_PATTERN: Final = re.compile(r"^smsf_([0-9a-f]{16})_([A-Za-z0-9_-]{1,128})$")
SECRET_BYTES: Final = 32


class ApiKeyRecord(BaseModel):
    """The value stored on ``sms.api-keys`` (JSON), keyed by ``key_id``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str
    tenant_id: str
    digest: str  # hex HMAC-SHA256(pepper, secret)
    created_at: float  # Unix seconds
    label: str = ""
    revoked_at: float | None = None
    revoked_reason: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class PresentedKey(NamedTuple):
    key_id: str
    secret: str


def digest(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def new_key(
    tenant_id: str,
    pepper: bytes,
    *,
    now: float,
    label: str = "",
    key_id: str | None = None,
    secret: str | None = None,
) -> tuple[str, ApiKeyRecord]:
    """A new key (shown once) and the record to store. ``key_id``/``secret`` only for tests."""
    key_id = key_id or secrets.token_hex(8)
    secret = secret or secrets.token_urlsafe(SECRET_BYTES)
    record = ApiKeyRecord(
        key_id=key_id, tenant_id=tenant_id, digest=digest(pepper, secret), created_at=now,
        label=label,
    )
    return f"{KEY_PREFIX}{key_id}_{secret}", record


def revoked(record: ApiKeyRecord, *, now: float, reason: str = "") -> ApiKeyRecord:
    return record.model_copy(update={"revoked_at": now, "revoked_reason": reason})


def parse_key(text: str) -> PresentedKey | None:
    """The key id and secret of a presented key, or None if it is not shaped like a key."""
    match = _KEY_PATTERN.match(text)
    return PresentedKey(match.group(1), match.group(2)) if match else None


def verify(record: ApiKeyRecord | None, presented: PresentedKey | None, pepper: bytes) -> bool:
    """True if ``presented`` is the active key of ``record``; constant time in the secret."""
    if presented is None:
        return False
    # Compute the HMAC even when there is no record, so an unknown key id costs the same time
    # as a wrong secret.
    computed = digest(pepper, presented.secret)
    expected = record.digest if record is not None else "0" * len(computed)
    matches = hmac.compare_digest(computed, expected)
    return matches and record is not None and record.active
