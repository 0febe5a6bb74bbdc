"""MO messages: keyword parsing, opt-out decisions, tenant resolution, receipt vs MO PDUs."""

from __future__ import annotations

import pytest

from connectors.smpp.models import InboundDeliver
from smsflow.domain.inbound import (
    InboundKeyword,
    KeywordLists,
    apply_action,
    build_number_index,
    is_opted_out,
    keyword_action,
    opt_out_key,
    resolve_tenant,
)
from smsflow.domain.reasons import REASONS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", InboundKeyword.OPT_OUT),
        ("  stop\n", InboundKeyword.OPT_OUT),
        ("Stop.", InboundKeyword.OPT_OUT),
        ("UnSubscribe!", InboundKeyword.OPT_OUT),
        ("start", InboundKeyword.OPT_IN),
        ("UNSTOP", InboundKeyword.OPT_IN),
        ("stop sending me offers", InboundKeyword.NONE),
        ("stopp", InboundKeyword.NONE),
        ("", InboundKeyword.NONE),
        ("hello", InboundKeyword.NONE),
    ],
)
def test_default_keywords(text: str, expected: InboundKeyword) -> None:
    assert keyword_action(text, KeywordLists()) is expected


def test_tenant_keywords_replace_one_side_only() -> None:
    keywords = KeywordLists.of(["arrêt", "stop  all"], None)
    assert keyword_action("ARRÊT", keywords) is InboundKeyword.OPT_OUT
    assert keyword_action("stop all", keywords) is InboundKeyword.OPT_OUT
    assert keyword_action("STOP", keywords) is InboundKeyword.NONE
    assert keyword_action("start", keywords) is InboundKeyword.OPT_IN


def test_keyword_lists_refuse_overlap_and_blank() -> None:
    with pytest.raises(ValueError, match="both"):
        KeywordLists.of(["stop"], ["Stop"])
    with pytest.raises(ValueError, match="empty"):
        KeywordLists.of([" "], None)


def test_latest_keyword_wins_and_other_text_keeps_state() -> None:
    state = False
    for action, expected in [
        (InboundKeyword.NONE, False),
        (InboundKeyword.OPT_OUT, True),
        (InboundKeyword.NONE, True),
        (InboundKeyword.OPT_IN, False),
    ]:
        state = apply_action(state, action)
        assert state is expected


def test_opt_out_is_per_tenant_and_number() -> None:
    opted_out = {opt_out_key("acme", "447700900123")}
    assert is_opted_out(opted_out, "acme", "+447700900123")
    assert not is_opted_out(opted_out, "globex", "+447700900123")
    assert not is_opted_out(opted_out, "acme", "+447700900124")


def test_resolve_tenant_by_short_code_long_number_or_sender_id() -> None:
    index = build_number_index({"acme": ["ACME", "+447700900000"], "globex": ["60001"]})
    assert resolve_tenant("acme", index) == "acme"
    assert resolve_tenant("447700900000", index) == "acme"
    assert resolve_tenant("60001", index) == "globex"
    assert resolve_tenant("60002", index) is None


def test_an_address_claimed_by_two_tenants_is_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        build_number_index({"acme": ["60001"], "globex": ["60001"]})


def test_new_reason_codes_are_in_the_table() -> None:
    assert {"OPTED_OUT", "MO_UNKNOWN_DESTINATION"} <= REASONS.keys()


@pytest.mark.parametrize(
    ("esm_class", "is_receipt"),
    [(0x00, False), (0x04, True), (0x20, True), (0x40, False), (0x44, True), (0x08, False)],
)
def test_pdu_classification_receipt_vs_mo(esm_class: int, is_receipt: bool) -> None:
    pdu = InboundDeliver(
        bind_name="b", source_addr="447700900123", destination_addr="60001",
        esm_class=esm_class, short_message=b"STOP", tlvs={},
    )
    assert pdu.is_receipt is is_receipt
