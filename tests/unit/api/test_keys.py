from __future__ import annotations

import pytest
from pydantic import SecretStr

from api.keys import digest, new_key, parse_key, revoked, verify
from api.settings import ApiSettings, PepperMissing, resolve_pepper

PEPPER = b"0123456789abcdef0123"


def test_a_new_key_verifies_and_only_its_hmac_is_stored() -> None:
    key, record = new_key("acme", PEPPER, now=100.0, label="billing")
    presented = parse_key(key)
    assert presented is not None and presented.key_id == record.key_id
    assert verify(record, presented, PEPPER)
    stored = record.model_dump_json()
    assert presented.secret not in stored and key not in stored
    assert record.digest == digest(PEPPER, presented.secret)


def test_wrong_secret_other_pepper_and_revoked_keys_fail() -> None:
    key, record = new_key("acme", PEPPER, now=0.0)
    presented = parse_key(key)
    assert presented is not None
    assert not verify(record, presented._replace(secret=presented.secret + "x"), PEPPER)
    assert not verify(record, presented, b"another-pepper-0123456")
    assert not verify(revoked(record, now=1.0, reason="leaked"), presented, PEPPER)
    assert not verify(None, presented, PEPPER)
    assert not verify(record, None, PEPPER)


@pytest.mark.parametrize(
    "text", ["", "smsf_", "smsf_0011_secret", "smsf_00112233AABBCCDD_s", "sk_00112233aabbccdd_s",
             "smsf_00112233aabbccdd_", "smsf_00112233aabbccdd_a b"]
)
def test_malformed_keys_do_not_parse(text: str) -> None:
    assert parse_key(text) is None


def test_keys_are_unique() -> None:
    keys = {new_key("acme", PEPPER, now=0.0)[0] for _ in range(200)}
    assert len(keys) == 200


def test_the_pepper_comes_from_a_file_or_the_environment(tmp_path) -> None:
    secret_file = tmp_path / "pepper"
    secret_file.write_text("from-the-file-0123456789\n")
    both = ApiSettings(key_pepper=SecretStr("from-the-variable-0123"), key_pepper_file=secret_file)
    assert resolve_pepper(both) == b"from-the-file-0123456789"
    assert resolve_pepper(ApiSettings(key_pepper=SecretStr("from-the-variable-0123"))) == (
        b"from-the-variable-0123"
    )
    with pytest.raises(PepperMissing, match="SMSFLOW_API_KEY_PEPPER_FILE"):
        resolve_pepper(ApiSettings())
    with pytest.raises(PepperMissing, match="at least 16"):
        resolve_pepper(ApiSettings(key_pepper=SecretStr("short")))
    with pytest.raises(PepperMissing, match="cannot read"):
        resolve_pepper(ApiSettings(key_pepper_file=tmp_path / "missing"))
