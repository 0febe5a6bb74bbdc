from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from api.app import _from_validation
from api.errors import ERRORS, ApiError
from api.idempotency import IdempotencyStore, StoredAnswer, check_key, fingerprint
from api.messages import (
    BatchIn,
    Checked,
    MessageIn,
    Problem,
    check_message,
    fresh_ids,
    message_id,
)
from smsflow.config.models import Operator
from smsflow.domain.numbering import build_numbering
from smsflow.domain.reasons import REASONS

NUMBERING = build_numbering([
    Operator(id="gb-ee", name="EE", country="GB", mcc_mnc="23430", prefixes=("+44740",),
             test_prefixes=("+447700900",)),
])


def message(**fields: object) -> MessageIn:
    return MessageIn.model_validate(
        {"destination": "+447700900123", "source": "ACME", "body": "hi", **fields}
    )


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"destination": "+44123"}, "INVALID_NUMBER"),
        ({"destination": "447700900123x"}, "INVALID_NUMBER"),
        ({"destination": "+442079460000"}, "UNSUPPORTED_DESTINATION"),
        ({"body": ""}, "EMPTY_BODY"),
        ({"source": "TwelveChars1"}, "INVALID_SOURCE"),
        ({"body": "x" * 1531}, "MESSAGE_TOO_LONG"),  # 11 GSM-7 parts of 153
        ({"body": "é" * 10 + "ж" * 671}, "MESSAGE_TOO_LONG"),  # UCS-2: 11 parts of 67
    ],
)
def test_content_refusals_use_the_pipeline_reason_codes(fields: dict[str, object], code: str
                                                        ) -> None:
    result = check_message(message(**fields), NUMBERING)
    assert isinstance(result, Problem) and result.reason_code == code
    assert code in REASONS and code in ERRORS


def test_an_acceptable_message_is_normalised_and_sized() -> None:
    assert check_message(message(), NUMBERING) == Checked("+447700900123", 1)
    assert check_message(message(body="x" * 1530), NUMBERING) == Checked("+447700900123", 10)
    assert check_message(message(body="ж" * 71), NUMBERING) == Checked("+447700900123", 2)


def test_message_ids_are_stable_under_an_idempotency_key_only() -> None:
    assert message_id("t", "k", 0) == message_id("t", "k", 0)
    assert len({message_id("t", "k", 0), message_id("t", "k", 1), message_id("u", "k", 0)}) == 3
    assert message_id("t", None, 0) != message_id("t", None, 0)


def _validation_error(model: type[BaseModel], payload: object) -> RequestValidationError:
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        return RequestValidationError(errors)
    raise AssertionError("payload validated")


def test_schema_errors_map_to_stable_codes() -> None:
    unknown = _from_validation(_validation_error(MessageIn, {
        "destination": "+447700900123", "source": "A", "body": "b", "colour": "red"}))
    assert (unknown.status, unknown.code) == (422, "INVALID_REQUEST")
    assert unknown.message.startswith("colour:")
    too_many = _from_validation(_validation_error(BatchIn, {"messages": [
        {"destination": "+447700900123", "source": "A", "body": "b"}] * 1001}))
    assert (too_many.status, too_many.code) == (413, "BATCH_TOO_LARGE")
    bad_json = _from_validation(RequestValidationError([{
        "type": "json_invalid", "loc": ("body", 3), "msg": "JSON decode error",
        "ctx": {"error": "Expecting value"}}]))
    assert (bad_json.status, bad_json.code) == (400, "MALFORMED_JSON")
    assert "Expecting value at 3" in bad_json.message


def test_every_error_code_has_an_error_status() -> None:
    assert all(400 <= kind.status < 500 or kind.status in (500, 503) for kind in ERRORS.values())
    with pytest.raises(KeyError):
        ApiError("NOT_A_CODE")


@pytest.mark.parametrize("key", ["", "a" * 256, "has space", "tab\t", "é"])
def test_idempotency_keys_are_printable_ascii(key: str) -> None:
    with pytest.raises(ApiError) as raised:
        check_key(key)
    assert raised.value.code == "INVALID_IDEMPOTENCY_KEY"


def _answer(fp: str, at: float) -> StoredAnswer:
    return StoredAnswer(fingerprint=fp, status=202, body={"message_id": "m"}, stored_at=at)


def test_a_stored_answer_replays_for_the_same_request_within_the_ttl() -> None:
    store = IdempotencyStore("unused:9092", "unused", ttl_s=100.0)
    fp = fingerprint("/v1/messages", [{"body": "x"}])
    store.remember("t/k", _answer(fp, at=1000.0))
    assert store.lookup("t/k", fp, now=1050.0) == _answer(fp, 1000.0)
    assert store.lookup("t/k", fp, now=1101.0) is None
    with pytest.raises(ApiError) as raised:
        store.lookup("t/k", fingerprint("/v1/messages", [{"body": "y"}]), now=1050.0)
    assert raised.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert store.prune(now=1101.0) == 1 and len(store) == 0


def test_a_replayed_topic_record_counts_like_a_remembered_one() -> None:
    store = IdempotencyStore("unused:9092", "unused", ttl_s=100.0)
    store._apply(b"t/k", _answer("f", at=5.0).model_dump_json().encode())
    store._apply(b"t/bad", b"not json")
    assert store.lookup("t/k", "f", now=6.0) is not None
    assert store.lookup("t/bad", "f", now=6.0) is None
    store._apply(b"t/k", None)
    assert store.lookup("t/k", "f", now=6.0) is None


def test_a_concurrent_copy_waits_for_the_first_answer_or_runs_itself() -> None:
    async def scenario() -> None:
        store = IdempotencyStore("unused:9092", "unused", ttl_s=100.0)
        assert store.claim("t/k") is None
        waiting = store.claim("t/k")
        assert waiting is not None
        store.release("t/k", _answer("f", 1.0))
        assert (await waiting).fingerprint == "f"
        assert store.claim("t/k") is None  # released: the next one owns it
        failed = store.claim("t/k")
        assert failed is not None
        store.release("t/k", None)
        assert failed.cancelled()

    asyncio.run(scenario())


def test_fresh_ids_are_distinct_version_4_uuids_in_the_canonical_form() -> None:
    ids = fresh_ids(2_000)
    assert len(set(ids)) == 2_000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
    variants = {text[19] for text in ids}
    assert variants == set("89ab")  # all four variant digits occur in 2,000 draws
