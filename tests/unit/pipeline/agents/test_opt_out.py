"""The opt-out table's fold (pipeline/agents/opt_out.py): STOP adds, START removes, the latest
keyword wins, other texts and unresolved MO change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.agents.opt_out import apply
from schemas.models import InboundKeyword, InboundMessage
from smsflow.domain.inbound import opt_out_key

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def _mo(keyword: InboundKeyword, source: str = "447700900123",
        tenant: str = "acme-bank") -> InboundMessage:
    return InboundMessage(inbound_id=f"mo-{keyword}", tenant_id=tenant, source=source,
                          destination="60001", text=str(keyword), data_coding=0,
                          keyword=keyword, smsc_id="smsc-uk", bind="smsc-uk#0",
                          received_at=NOW)


def test_stop_then_start_then_stop() -> None:
    table: dict[str, bytes] = {}
    key = opt_out_key("acme-bank", "+447700900123")
    apply(table, _mo(InboundKeyword.OPT_OUT))
    assert key in table
    apply(table, _mo(InboundKeyword.NONE))
    assert key in table, "a conversation is not a command"
    apply(table, _mo(InboundKeyword.OPT_OUT))
    assert list(table) == [key], "a second STOP changes nothing"
    apply(table, _mo(InboundKeyword.OPT_IN))
    assert table == {}
    apply(table, _mo(InboundKeyword.OPT_IN))
    assert table == {}, "START without STOP changes nothing"


def test_opt_outs_are_per_tenant_and_number() -> None:
    table: dict[str, bytes] = {}
    apply(table, _mo(InboundKeyword.OPT_OUT, tenant="acme-bank"))
    apply(table, _mo(InboundKeyword.OPT_OUT, tenant="shopfast", source="+447700900999"))
    assert set(table) == {opt_out_key("acme-bank", "+447700900123"),
                          opt_out_key("shopfast", "+447700900999")}
