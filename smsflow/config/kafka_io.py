"""Read and write the ``sms.config`` topic (blocking; for the CLI and the sender at start-up).

Reads take a fresh ``smsflow-config-reader-*`` group (never joined, nothing committed) unless
the caller names one; the reading itself is :mod:`smsflow.config.config_read`.
"""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from schemas.models import ConfigRecord
from smsflow.config import config_read
from smsflow.config.models import PlatformConfig
from smsflow.config.store import fold, now_utc, to_records
from smsflow.kafka_clients import producer_config
from smsflow.kafka_security import KafkaTarget

__all__ = ["apply_config", "read_config", "read_config_records", "read_records"]


def read_records(bootstrap: KafkaTarget, topic: str, *, timeout_s: float = 30.0,
                 group_id: str | None = None) -> list[tuple[bytes | None, bytes | None]]:
    """Every ``(key, value)`` of a single-partition topic now, in offset order."""
    return config_read.read_records(
        bootstrap, topic, group_id=group_id or f"smsflow-config-reader-{uuid.uuid4()}",
        timeout_s=timeout_s)


def read_config_records(
    bootstrap: KafkaTarget, topic: str, *, timeout_s: float = 30.0, group_id: str | None = None
) -> list[tuple[str, ConfigRecord | None]]:
    """Every record of the (single-partition) config topic, in offset order."""
    return config_read.read_config_records(
        bootstrap, topic, group_id=group_id or f"smsflow-config-reader-{uuid.uuid4()}",
        timeout_s=timeout_s)


def read_config(bootstrap: KafkaTarget, topic: str, *, group_id: str | None = None
                ) -> PlatformConfig:
    return fold(read_config_records(bootstrap, topic, group_id=group_id))


def apply_config(bootstrap: KafkaTarget, topic: str, config: PlatformConfig) -> list[str]:
    """Make the topic hold exactly ``config``: write changed objects, tombstone removed ones."""
    current = dict(read_config_records(bootstrap, topic))
    live = {key: record for key, record in current.items() if record is not None}
    wanted = to_records(config, now_utc())
    producer = Producer(producer_config(bootstrap))
    changes: list[str] = []
    for key, record in wanted.items():
        previous = live.get(key)
        if previous is None or previous.document != record.document:
            producer.produce(topic, key=key.encode(), value=record.to_avro(topic))
            changes.append(f"{'updated' if previous else 'added'} {key}")
    for key in sorted(set(live) - set(wanted)):
        producer.produce(topic, key=key.encode(), value=None)
        changes.append(f"removed {key}")
    if producer.flush(30) != 0:
        raise RuntimeError("config records were not all acknowledged by Kafka")
    return changes or ["configuration unchanged"]
