"""Opt-out: the subscribers who sent a tenant STOP, in a table the router reads.

The ``opt_out`` agent reads ``sms.inbound`` (mobile-originated messages the sender stored, each
with the keyword it matched: ``OPT_OUT``, ``OPT_IN`` or ``NONE``, see
:mod:`smsflow.domain.inbound`) and keeps the ``opt-outs`` table: key
``<tenant>|<+E.164 subscriber>``, present while the subscriber is opted out. STOP adds the
key, START deletes it; the latest keyword wins. The router refuses a message to an opted-out
subscriber with ``OPTED_OUT`` on ``sms.rejected`` (:func:`pipeline.agents.router.refusal`).

Why the router can read it locally: ``sms.inbound`` and ``sms.submitted`` are both keyed by
tenant id, with the same partitioner (murmur2) and the same partition count, and the table's
changelog has that count too. A tenant's STOPs and its messages are therefore in the same
partition number, which faust assigns to one worker together with the table's partition
(co-partitioning), so the entry is in this worker's memory when its messages arrive. The
order between a STOP and a message submitted at the same moment is not defined (two topics);
a message submitted after the worker read the STOP is refused.

MO messages whose destination is no tenant's number (``tenant_id`` empty) change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from typing import Any

import faust

from pipeline.app import Worker
from pipeline.decoding import decode_or_reject
from schemas.models import InboundMessage
from smsflow.domain.inbound import apply_action, opt_out_key
from smsflow.topics import INBOUND, REJECTED

__all__ = ["STAGE", "TABLE", "register"]

log = logging.getLogger(__name__)

STAGE = "opt-out"
TABLE = "opt-outs"
_OPTED_OUT = b"1"


def register(worker: Worker) -> Container[str]:
    """The ``opt_out`` agent; returns the table the router looks keys up in."""
    table = worker.app.Table(TABLE, key_type=str, value_type=bytes)
    rejected_out = worker.output(REJECTED)

    @worker.app.agent(worker.topic(INBOUND))
    async def opt_out(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = await decode_or_reject(InboundMessage, event, rejected_out, stage=STAGE)
            if message is None or not message.tenant_id:
                continue
            apply(table, message)

    return _Lookup(table)


def apply(table: Any, message: InboundMessage) -> None:
    """Fold one MO message into the table (a dict in unit tests)."""
    assert message.tenant_id is not None
    key = opt_out_key(message.tenant_id, message.source)
    was = key in table
    now = apply_action(was, message.keyword)
    if now and not was:
        table[key] = _OPTED_OUT
        log.info("%s: %s opted out (%s)", message.tenant_id, message.source, message.inbound_id)
    elif was and not now:
        del table[key]
        log.info("%s: %s opted back in (%s)", message.tenant_id, message.source,
                 message.inbound_id)


class _Lookup:
    """``key in lookup`` over the table: what the router's pure decision takes."""

    __slots__ = ("_table",)

    def __init__(self, table: faust.types.TableT[str, bytes]) -> None:
        self._table = table

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._table.get(key) is not None

    def __len__(self) -> int:
        return len(self._table)
