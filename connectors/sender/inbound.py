"""MO ``deliver_sm`` → ``InboundMessage``: the sender's thin adapter over ``domain.inbound``.

Built once from the platform configuration (and rebuilt when the sender re-reads it). An MO whose
destination no tenant owns is still published, keyed ``unresolved:<destination>`` with reason
``MO_UNKNOWN_DESTINATION``, so nothing is dropped and operators can see misconfigured numbers.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from connectors.smpp.models import InboundDeliver
from schemas.models import InboundMessage
from smsflow.config.models import PlatformConfig
from smsflow.domain.inbound import (
    InboundKeyword,
    KeywordLists,
    build_number_index,
    keyword_action,
    normalize_address,
    resolve_tenant,
)

UCS2_DATA_CODING = 0x08


def decode_text(short_message: bytes, data_coding: int) -> str:
    """UCS-2 when data_coding says so, else Latin-1 (GSM-7 text from an SMSC is mostly sent as
    8-bit ASCII; undecodable bytes never make the message disappear)."""
    if data_coding & 0x0F == UCS2_DATA_CODING:
        return short_message.decode("utf-16-be", errors="replace")
    return short_message.decode("latin-1")


class InboundClassifier:
    """Tenant and keyword for each MO, from one configuration snapshot."""

    def __init__(self, config: PlatformConfig) -> None:
        self._index = build_number_index(
            {tenant.id: tenant.inbound.numbers for tenant in config.tenants}
        )
        self._keywords = {
            tenant.id: KeywordLists.of(tenant.inbound.opt_out_keywords,
                                       tenant.inbound.opt_in_keywords)
            for tenant in config.tenants
        }

    def event(
        self, inbound: InboundDeliver, smsc_id: str, now: datetime
    ) -> tuple[str, InboundMessage]:
        """The record key and value to publish on ``sms.inbound``."""
        text = decode_text(inbound.short_message, inbound.data_coding)
        destination = normalize_address(inbound.destination_addr)
        tenant_id = resolve_tenant(destination, self._index)
        action = (keyword_action(text, self._keywords[tenant_id]) if tenant_id is not None
                  else InboundKeyword.NONE)
        message = InboundMessage(
            inbound_id=str(uuid.uuid4()), tenant_id=tenant_id,
            source=normalize_address(inbound.source_addr), destination=destination,
            text=text, data_coding=inbound.data_coding, keyword=action,
            reason=None if tenant_id is not None else "MO_UNKNOWN_DESTINATION",
            smsc_id=smsc_id, bind=inbound.bind_name, received_at=now,
        )
        return (tenant_id if tenant_id is not None else f"unresolved:{destination}"), message
