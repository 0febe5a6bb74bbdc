"""Read the ``sms.config`` topic under a consumer group the caller names (blocking).

The worker reads the configuration here at start-up (``ConfigWatcher.prewarm``) under its own
group id, which its Kafka ACLs allow; :mod:`smsflow.config.kafka_io` wraps these for the CLI and
the sender with a fresh ``smsflow-config-reader-*`` group. Kept apart so the worker's code names
no group it is not granted (tests/k8s/test_kafka_access.py derives the ACLs from the code).
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from schemas.codec import DecodeError
from schemas.models import ConfigRecord
from schemas.retrying import decode_blocking
from smsflow.config.models import PlatformConfig
from smsflow.config.store import fold
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget

__all__ = ["read_config", "read_config_records", "read_records"]

def read_records(bootstrap: KafkaTarget, topic: str, *, group_id: str, timeout_s: float = 30.0
                 ) -> list[tuple[bytes | None, bytes | None]]:
    """Every ``(key, value)`` of a single-partition topic now, in offset order. ``group_id``:
    the group librdkafka looks up (never joined, nothing committed), for a client whose ACLs
    allow only its own groups."""
    consumer = Consumer(
        {
            **client_config(bootstrap),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        low, high = _watermarks(consumer, topic, timeout_s)
        if high <= low:
            return []
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        records: list[tuple[bytes | None, bytes | None]] = []
        while True:
            message = consumer.poll(timeout_s)
            if message is None:
                raise TimeoutError(f"no record from {topic} within {timeout_s}s")
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return records
                raise RuntimeError(f"reading {topic}: {error}")
            records.append((message.key(), message.value()))
            if (message.offset() or 0) + 1 >= high:
                return records
    finally:
        consumer.close()


def read_config_records(
    bootstrap: KafkaTarget, topic: str, *, group_id: str, timeout_s: float = 30.0
) -> list[tuple[str, ConfigRecord | None]]:
    """Every record of the (single-partition) config topic, in offset order."""
    records: list[tuple[str, ConfigRecord | None]] = []
    for position, (raw_key, value) in enumerate(read_records(bootstrap, topic,
                                                             timeout_s=timeout_s,
                                                             group_id=group_id)):
        key = (raw_key or b"").decode()
        records.append((key, decode_or_drop(key, value, position)))
    return records


log = logging.getLogger(__name__)

_RETRIABLE = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    # librdkafka's own metadata does not show a topic created a moment ago yet
    # (test_webhooks: a topic created with AdminClient, then read at once).
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
}


def _watermarks(consumer: Consumer, topic: str, timeout_s: float) -> tuple[int, int]:
    """Watermarks of partition 0, retried while a just-created topic elects its leader."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
            return low, high
        except KafkaException as exc:
            if exc.args[0].code() not in _RETRIABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def decode_or_drop(key: str, value: bytes | None, position: int) -> ConfigRecord | None:
    """A record this version cannot read (an unknown schema, corruption) counts as absent, so
    ``apply`` rewrites it and readers carry on; it is logged, never silently ignored."""
    if not value:
        return None
    try:
        # A registry outage is not the record's fault: wait it out, never treat it as absent.
        return decode_blocking(ConfigRecord, value)
    except DecodeError as exc:
        log.warning("config record %s (#%d on the topic) is unreadable and treated as absent: "
                    "%s", key, position, exc)
        return None


def read_config(bootstrap: KafkaTarget, topic: str, *, group_id: str) -> PlatformConfig:
    return fold(read_config_records(bootstrap, topic, group_id=group_id))
