"""Per-tenant work queues and the connector's counters (plain data, no I/O)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from connectors.webhooks.ledger import AckTicket
from connectors.webhooks.payload import Kind


@dataclass
class WebhookJob:
    """One delivery report or MO message on its way to its tenant's endpoint."""

    ticket: AckTicket
    kind: Kind
    tenant_id: str
    delivery_id: str  # the report's message_id or the MO's inbound_id: X-Smsflow-Delivery-Id
    body: bytes  # serialised once: every attempt sends and signs the same bytes
    original: bytes  # the record's value, for the rejection if it comes to that
    source_topic: str
    written_at: float  # unix seconds the record was written to its topic: the budget's start
    attempts: int = 0


@dataclass
class Lane:
    """A tenant's reports, or its MO messages: at most ``max_in_flight`` of them are being
    delivered (or waiting between attempts) at once; the rest queue here. Lanes never share a
    slot, so one tenant's dead endpoint only ever occupies its own, and a dead MO URL never
    holds up the same tenant's reports (nor the other way round)."""

    tenant_id: str
    kind: Kind
    queue: deque[WebhookJob] = field(default_factory=deque)
    in_flight: int = 0

    @property
    def backlog(self) -> int:
        return len(self.queue) + self.in_flight


@dataclass
class Stats:
    """Counts of one kind (reports or MO messages)."""

    received: int = 0
    skipped: int = 0  # no webhook (or it was removed while waiting), MO off, MO without tenant
    delivered: int = 0
    retried: int = 0  # failed attempts that were scheduled again
    rejected: int = 0  # WEBHOOK_REJECTED
    gave_up: int = 0  # WEBHOOK_GAVE_UP
    undecodable: int = 0
    abandoned: int = 0  # dropped on revocation or shutdown, to be read again
    delivered_by_tenant: Counter[str] = field(default_factory=Counter)

    def totals(self) -> dict[str, int]:
        return {
            name: value for name, value in vars(self).items() if isinstance(value, int)
        }
