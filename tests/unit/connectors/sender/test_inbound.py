"""The sender's MO adapter: tenant by destination, keyword by tenant lists, unknown kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pydantic
import pytest

from connectors.sender.inbound import InboundClassifier, dead_letter, decode_text
from connectors.smpp.models import InboundDeliver
from schemas.models import InboundKeyword, InboundMessage
from smsflow.config.models import PlatformConfig

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def _config() -> PlatformConfig:
    return PlatformConfig.model_validate({
        "tenants": [
            {"id": "acme", "name": "Acme", "rate_limit_pps": 10,
             "inbound": {"numbers": ["60001", "ACME"]}},
            {"id": "globex", "name": "Globex", "rate_limit_pps": 10,
             "inbound": {"numbers": ["+447700900000"], "opt_out_keywords": ["halt"]}},
        ],
    })


def _mo(destination: str, text: bytes, data_coding: int = 0) -> InboundDeliver:
    return InboundDeliver(bind_name="b1", source_addr="447700900123",
                          destination_addr=destination, esm_class=0, short_message=text,
                          tlvs={}, data_coding=data_coding)


def test_stop_to_a_short_code_is_the_tenants_opt_out() -> None:
    key, message = InboundClassifier(_config()).event(_mo("60001", b" stop "), "smsc-a", NOW)
    assert key == "acme"
    assert message.tenant_id == "acme" and message.keyword is InboundKeyword.OPT_OUT
    assert message.source == "+447700900123" and message.reason is None
    assert InboundMessage.from_avro(message.to_avro("sms.inbound")) == message


def test_tenant_keywords_apply_to_that_tenant_only() -> None:
    classifier = InboundClassifier(_config())
    assert classifier.event(_mo("447700900000", b"HALT"), "s", NOW)[1].keyword is (
        InboundKeyword.OPT_OUT)
    assert classifier.event(_mo("447700900000", b"STOP"), "s", NOW)[1].keyword is (
        InboundKeyword.NONE)


def test_unknown_destination_is_classified_with_a_reason() -> None:
    key, message = InboundClassifier(_config()).event(_mo("99999", b"STOP"), "s", NOW)
    assert key == "unresolved:99999"
    assert message.tenant_id is None and message.reason == "MO_UNKNOWN_DESTINATION"
    assert message.keyword is InboundKeyword.NONE


def test_unknown_destination_is_dead_lettered_with_the_message_as_original() -> None:
    _key, message = InboundClassifier(_config()).event(_mo("99999", b"hello"), "s", NOW)
    rejection = dead_letter(message, "sms.inbound", "sender")
    assert rejection.reason_code == "MO_UNKNOWN_DESTINATION" and rejection.stage == "sender"
    assert rejection.tenant_id is None and rejection.message_id == message.inbound_id
    assert "99999" in rejection.reason and rejection.source_topic == "smpp:b1"
    assert rejection.original is not None
    assert InboundMessage.from_avro(rejection.original) == message  # replayable as it is


def test_a_message_with_a_tenant_is_not_dead_lettered() -> None:
    _key, message = InboundClassifier(_config()).event(_mo("60001", b"hi"), "s", NOW)
    with pytest.raises(AssertionError):
        dead_letter(message, "sms.inbound", "sender")


def test_ucs2_text_is_decoded() -> None:
    assert decode_text("ARRÊT".encode("utf-16-be"), 0x08) == "ARRÊT"


def test_config_check_refuses_a_number_two_tenants_list_and_overlapping_keywords() -> None:
    with pytest.raises(pydantic.ValidationError, match="belongs to both"):
        PlatformConfig.model_validate({"tenants": [
            {"id": "a", "name": "A", "rate_limit_pps": 1, "inbound": {"numbers": ["60001"]}},
            {"id": "b", "name": "B", "rate_limit_pps": 1, "inbound": {"numbers": ["60001"]}},
        ]})
    with pytest.raises(pydantic.ValidationError, match="both opt out and opt in"):
        PlatformConfig.model_validate({"tenants": [
            {"id": "a", "name": "A", "rate_limit_pps": 1,
             "inbound": {"opt_out_keywords": ["go"], "opt_in_keywords": ["GO"]}},
        ]})
