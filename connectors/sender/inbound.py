"""MO ``deliver_sm`` → ``InboundMessage``: the sender's thin adapter over ``domain.inbound``.

Built once from the platform configuration (and rebuilt when the sender re-reads it). An MO whose
destination no tenant owns is not published on ``sms.inbound`` (whose readers would all have to
skip it): it is dead-lettered on ``sms.rejected`` with reason ``MO_UNKNOWN_DESTINATION``
(:func:`dead_letter`), the ``InboundMessage`` as ``original``, so nothing is dropped, operators
see misconfigured numbers, and the message can be replayed once the number is configured.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from connectors.smpp.models import InboundDeliver
from schemas.models import InboundMessage, Rejection
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


def dead_letter(message: InboundMessage, inbound_topic: str, stage: str) -> Rejection:
    """The ``sms.rejected`` record of an MO no tenant owns (``message.tenant_id`` is None).

    ``original`` is the value as it would have been on ``inbound_topic`` (encoded for that
    topic), so replaying it there after adding the number to a tenant needs no re-encoding.
    """
    assert message.tenant_id is None and message.reason is not None
    return Rejection(
        reason_code=message.reason,
        reason=f"MO from {message.source} to {message.destination}: no tenant lists "
        f"{message.destination} in its inbound.numbers",
        stage=stage, message_id=message.inbound_id, tenant_id=None,
        source_topic=f"smpp:{message.bind}", source_partition=-1, source_offset=-1,
        original=message.to_avro(inbound_topic), rejected_at=message.received_at,
    )
