"""Reads terminal states: delivery reports from ``sms.dlr`` and rejections from ``sms.rejected``.

What an analyst or a test uses to learn how messages ended. Each instance uses its own consumer
group and starts from the beginning of both topics.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError

from schemas.codec import DecodeError
from schemas.models import DeliveryReport, Rejection
from schemas.retrying import decode_blocking


@dataclass(frozen=True)
class Terminal:
    topic: str
    report: DeliveryReport | None
    rejection: Rejection | None
    timestamp_ms: int  # when Kafka took the record: the moment the terminal state was known


class TerminalReader:
    def __init__(self, bootstrap: str, dlr_topic: str, rejected_topic: str) -> None:
        self._dlr_topic = dlr_topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"smsflow-terminal-reader-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
            }
        )
        self._consumer.subscribe([dlr_topic, rejected_topic])

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

    def close(self) -> None:
        self._consumer.close()
