"""Webhook signatures: what receivers verify, including the replay window."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.webhooks.signing import sign, signature, verify_signature

SECRET = "whsec-0123456789abcdef"
BODY = b'{"message_id":"m-1","status":"DELIVERED"}'
NOW = 1_760_000_000.7


def test_header_format_is_timestamp_and_hex_hmac_of_timestamp_dot_body() -> None:
    header = sign(SECRET, BODY, NOW)
    expected = hmac.new(SECRET.encode(), b"1760000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1760000000,v1={expected}"


def test_a_signed_body_verifies() -> None:
    assert verify_signature(SECRET, sign(SECRET, BODY, NOW), BODY, NOW + 3)


@pytest.mark.parametrize(
    ("secret", "body"),
    [("another-secret-0123", BODY), (SECRET, BODY + b" "), (SECRET, BODY.replace(b"m-1", b"m-2"))],
)
def test_a_wrong_secret_or_altered_body_fails(secret: str, body: bytes) -> None:
    assert not verify_signature(secret, sign(SECRET, BODY, NOW), body, NOW)


def test_the_timestamp_is_part_of_the_mac() -> None:
    header = sign(SECRET, BODY, NOW).replace("t=1760000000", "t=1760000100")
    assert not verify_signature(SECRET, header, BODY, NOW + 100)


@pytest.mark.parametrize(("delta", "ok"), [(-300, True), (300, True), (301, False), (-301, False)])
def test_replays_outside_the_tolerance_are_refused(delta: float, ok: bool) -> None:
    header = sign(SECRET, BODY, 1_760_000_000)
    assert verify_signature(SECRET, header, BODY, 1_760_000_000 + delta, tolerance_s=300) is ok


@pytest.mark.parametrize(
    "header",
    ["", "t=1760000000", "v1=abc", "t=soon,v1=abc", "garbage", "t=1760000000,v1=", "v0=1,t=1"],
)
def test_malformed_headers_are_refused(header: str) -> None:
    assert not verify_signature(SECRET, header, BODY, NOW)


def test_any_of_several_v1_entries_may_match_during_secret_rotation() -> None:
    good = signature(SECRET, 1_760_000_000, BODY)
    header = f"t=1760000000, v1={'0' * 64}, v1={good}"
    assert verify_signature(SECRET, header, BODY, NOW)


@given(secret=st.text(min_size=16, max_size=40), body=st.binary(max_size=300),
       now=st.integers(min_value=0, max_value=2**33))
def test_sign_then_verify_round_trips(secret: str, body: bytes, now: int) -> None:
    assert verify_signature(secret, sign(secret, body, now), body, now)
