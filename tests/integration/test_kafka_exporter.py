"""``smsflow kafka-exporter`` against the real broker: lag in records and seconds of a group
that committed part of a topic, its member count while it consumes and after it left, and
``smsflow_kafka_up`` 0 when no broker answers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connectors.kafka_exporter.exporter import KafkaLagCollector

RECORDS = 10
COMMITTED = 4
HEAD_TIMESTAMP_MS = 1_700_000_000_000  # record i is stamped HEAD + i s


def _samples(collector: KafkaLagCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_lag_in_records_and_seconds_and_group_members(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, suffix="lag")
    group = f"exporter-test-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for index in range(RECORDS):
        producer.produce(topic, value=b"x", timestamp=HEAD_TIMESTAMP_MS + index * 1000)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000})
    collector = KafkaLagCollector(kafka_bootstrap, [group])
    try:
        consumer.subscribe([topic])
        _wait_for(lambda: bool(consumer.poll(0.2) is not None or consumer.assignment()), 30,
                  "the group to form")
        consumer.commit(offsets=[TopicPartition(topic, 0, COMMITTED)], asynchronous=False)
        now_ms = HEAD_TIMESTAMP_MS + 60_000
        (lag,) = collector.read(now_ms=now_ms)
        assert lag.group == group and lag.members == 1
        partition = lag.partitions[(topic, 0)]
        assert partition.records == RECORDS - COMMITTED
        # The oldest unconsumed record is the one at the committed offset, stamped +4 s.
        assert partition.seconds == (now_ms - (HEAD_TIMESTAMP_MS + COMMITTED * 1000)) / 1000

        samples = _samples(collector)
        labels = (("group", group), ("partition", "0"), ("topic", topic))
        assert samples[("smsflow_kafka_consumer_lag_records", labels)] == RECORDS - COMMITTED
        assert samples[("smsflow_kafka_consumer_lag_seconds", labels)] > 60  # wall clock now
        assert samples[("smsflow_kafka_up", ())] == 1
        assert samples[("smsflow_kafka_brokers", ())] >= 1

        consumer.commit(offsets=[TopicPartition(topic, 0, RECORDS)], asynchronous=False)
        (caught_up,) = collector.read()
        assert caught_up.partitions[(topic, 0)].records == 0
        assert caught_up.partitions[(topic, 0)].seconds == 0.0
    finally:
        consumer.close()
    _wait_for(lambda: collector.read()[0].members == 0, 30, "the group to be empty")
    assert _samples(collector)[("smsflow_kafka_consumer_group_members",
                                (("group", group),))] == 0


def test_no_broker_reports_kafka_down() -> None:
    collector = KafkaLagCollector("127.0.0.1:1", ["any"], timeout_s=1.0)
    samples = _samples(collector)
    assert samples[("smsflow_kafka_up", ())] == 0
    assert not any(name == "smsflow_kafka_consumer_lag_records" for name, _ in samples)


def test_positions_on_topics_no_member_reads_are_not_lag_and_unused_groups_are_skipped(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    """After a switch to worker roles the app id's group keeps its old positions on the
    delivery topics (pipeline/roles.py) until Kafka expires them: not lag while its members
    read other topics. A group nobody ever used (the delivery group of unsplit workers) is not
    reported at all, so it raises no "no members" alert."""
    read, left = topic_factory(partitions=1, suffix="read"), topic_factory(partitions=1,
                                                                           suffix="left")
    group, unused = (f"exporter-test-{uuid.uuid4().hex[:8]}" for _ in range(2))
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for topic in (read, left):
        for _ in range(RECORDS):
            producer.produce(topic, value=b"x")
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False, "session.timeout.ms": 6000})
    collector = KafkaLagCollector(kafka_bootstrap, [group, unused])
    try:
        consumer.commit(offsets=[TopicPartition(left, 0, COMMITTED)], asynchronous=False)
        consumer.subscribe([read])
        _wait_for(lambda: bool(consumer.poll(0.2) is not None or consumer.assignment()), 30,
                  "the group to form")
        consumer.commit(offsets=[TopicPartition(read, 0, COMMITTED)], asynchronous=False)
        (lag,) = collector.read()
        assert lag.group == group and lag.members == 1
        assert set(lag.partitions) == {(read, 0)}
    finally:
        consumer.close()
    # Down (no member), every position counts again: its topics only fill.
    _wait_for(lambda: collector.read()[0].members == 0, 30, "the group to be empty")
    (down,) = collector.read()
    assert set(down.partitions) == {(read, 0), (left, 0)}
    assert down.partitions[(left, 0)].records == RECORDS - COMMITTED
