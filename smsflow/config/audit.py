"""The audit trail of operator commands on ``sms.audit``: who did what to a tenant, when, why.

``smsflow tenants quarantine|release`` and ``smsflow tenants key create|revoke`` write one
:class:`~schemas.models.AuditEvent` each, after the change itself is stored, and fail loudly if
Kafka does not take it (the change is then done but unaudited: the command says so and exits
non-zero, so a script notices). The topic keeps a year (smsflow/topics.py); ``smsflow tenants
audit TENANT`` prints a tenant's trail.
"""

from __future__ import annotations

import getpass
import os
import uuid
from datetime import UTC, datetime

from confluent_kafka import Producer

from schemas.models import AuditEvent
from schemas.retrying import decode_blocking
from smsflow.config.kafka_io import read_records
from smsflow.kafka_clients import producer_config
from smsflow.kafka_security import KafkaTarget

__all__ = ["ACTOR_ENV", "actor", "audit_trail", "record_audit"]

#: Overrides the operating-system user as the actor (a CI job, an admin tool acting for someone).
ACTOR_ENV = "SMSFLOW_AUDIT_ACTOR"


def actor() -> str:
    return os.environ.get(ACTOR_ENV) or getpass.getuser()


def record_audit(
    bootstrap: KafkaTarget, topic: str, action: str, tenant_id: str, *, reason: str = "",
    detail: str = "", at: datetime | None = None,
) -> AuditEvent:
    """Store one event (acks=all); raises when Kafka did not acknowledge it."""
    event = AuditEvent(audit_id=str(uuid.uuid4()), action=action, tenant_id=tenant_id,
                       actor=actor(), reason=reason, detail=detail,
                       at=at or datetime.now(UTC))
    producer = Producer(producer_config(bootstrap))
    producer.produce(topic, key=tenant_id.encode(), value=event.to_avro(topic))
    if producer.flush(30) != 0:
        raise RuntimeError(f"the audit event {action} of {tenant_id} was not stored on {topic}")
    return event


def audit_trail(
    bootstrap: KafkaTarget, topic: str, tenant_id: str | None = None
) -> list[AuditEvent]:
    """Every event on the topic (one tenant's, when given), oldest first."""
    events = [decode_blocking(AuditEvent, value) for key, value in read_records(bootstrap, topic)
              if value is not None and (tenant_id is None or key == tenant_id.encode())]
    return sorted(events, key=lambda event: event.at)
