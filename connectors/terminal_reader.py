"""Reads terminal states: delivery reports from ``sms.dlr`` and rejections from ``sms.rejected``.

What an analyst or a test uses to learn how messages ended. Each instance reads every
partition of both topics from the beginning by assignment, not in a consumer group: a group
whose coordinator moves (a broker failover) rebalances, and with no committed offset the
reader would start again from the beginning and see every report a second time. The scale-out
drill counted exactly that as ~6,000 "duplicate" reports (one per message terminal before the
broker was killed) when the pipeline had written none.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from schemas.codec import DecodeError
from schemas.models import DeliveryReport, Rejection
from schemas.retrying import decode_blocking
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget


@dataclass(frozen=True)
class Terminal:
    topic: str
    report: DeliveryReport | None
    rejection: Rejection | None
    timestamp_ms: int  # when Kafka took the record: the moment the terminal state was known


class TerminalReader:
    def __init__(self, bootstrap: KafkaTarget, dlr_topic: str, rejected_topic: str) -> None:
        self._dlr_topic = dlr_topic
        self._consumer = Consumer(
            {
                **client_config(bootstrap),
                # Required by the client; never joined (assign, below) and nothing committed.
                "group.id": f"smsflow-terminal-reader-{uuid.uuid4()}",
                "enable.auto.commit": False,
            }
        )
        self._consumer.assign([
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in (dlr_topic, rejected_topic)
            for partition in self._partitions(topic)
        ])

    def poll(self, timeout_s: float = 1.0, max_records: int = 1000) -> Iterator[Terminal]:
        for message in self._consumer.consume(max_records, timeout_s):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"consuming terminal states: {error}")
            value = message.value()
            topic = message.topic() or ""
            timestamp_ms = message.timestamp()[1]
            try:
                if topic == self._dlr_topic:
                    report = decode_blocking(DeliveryReport, value)
                    yield Terminal(topic, report, None, timestamp_ms)
                else:
                    yield Terminal(topic, None, decode_blocking(Rejection, value), timestamp_ms)
            except DecodeError as exc:
                raise RuntimeError(
                    f"undecodable record on {message.topic()} at offset {message.offset()}: {exc}"
                ) from exc

    def _partitions(self, topic: str) -> list[int]:
        found = self._consumer.list_topics(topic, timeout=30).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise RuntimeError(f"topic {topic} is missing: run `smsflow topics apply` first")
        return sorted(found.partitions)

    def close(self) -> None:
        self._consumer.close()
