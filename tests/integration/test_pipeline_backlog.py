"""smsflow/devstack/backlog.py against the real broker: the worker's and the sender's lag on
the three hot topics, read from committed offsets, and ``settle`` reporting a timeout with the
backlog it saw instead of pretending the stack was quiet."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from smsflow.devstack.backlog import pipeline_backlog, settle
from smsflow.settings import Settings
from smsflow.topics import ROUTED, SUBMITTED, THROTTLED, topic_name

pytestmark = pytest.mark.integration

PRODUCED = {SUBMITTED: 5, ROUTED: 3, THROTTLED: 4}


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    run = f"backlog-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"{run}.",
                        app_id=f"smsflow-{run}", home=tmp_path)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    names = [topic_name(settings, topic) for topic in PRODUCED]
    for future in admin.create_topics(
        [NewTopic(name, num_partitions=2, replication_factor=-1) for name in names]
    ).values():
        future.result(timeout=30)
    _wait_until_led(kafka_bootstrap, names)
    yield settings
    for future in admin.delete_topics(names, operation_timeout=30).values():
        future.result(timeout=30)


def _wait_until_led(bootstrap: str, names: list[str], timeout_s: float = 30.0) -> None:
    """A topic just created answers NOT_LEADER_FOR_PARTITION until its leaders are known."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"led-{uuid.uuid4()}"})
    deadline = time.monotonic() + timeout_s
    try:
        for name in names:
            for partition in (0, 1):
                while True:
                    try:
                        consumer.get_watermark_offsets(TopicPartition(name, partition),
                                                       timeout=5)
                        break
                    except KafkaException:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
    finally:
        consumer.close()


def _produce(settings: Settings) -> dict[TopicPartition, int]:
    """Every topic's records, spread over both partitions; the end offset of each partition."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    ends: dict[TopicPartition, int] = {}
    for topic, count in PRODUCED.items():
        for n in range(count):
            partition = n % 2
            producer.produce(topic_name(settings, topic), value=b"x", partition=partition)
            key = TopicPartition(topic_name(settings, topic), partition)
            ends[key] = ends.get(key, 0) + 1
    assert producer.flush(30) == 0
    return ends


def _commit(settings: Settings, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def test_backlog_counts_uncommitted_records_of_both_groups(settings: Settings) -> None:
    ends = _produce(settings)
    assert pipeline_backlog(settings) == sum(PRODUCED.values())

    submitted = topic_name(settings, SUBMITTED)
    _commit(settings, settings.app_id, [TopicPartition(submitted, 0, ends[TopicPartition(
        submitted, 0)])])  # partition 0 of sms.submitted done: 3 of its 5 records
    assert pipeline_backlog(settings) == sum(PRODUCED.values()) - 3

    throttled = topic_name(settings, THROTTLED)
    _commit(settings, f"{settings.app_id}-sender",
            [TopicPartition(throttled, p, ends[TopicPartition(throttled, p)]) for p in (0, 1)])
    assert pipeline_backlog(settings) == sum(PRODUCED.values()) - 3 - PRODUCED[THROTTLED]


def test_settle_returns_at_once_when_quiet_and_reports_a_timeout_with_the_backlog(
    settings: Settings,
) -> None:
    waited, backlog = settle(settings, at_most=0, timeout_s=5.0)
    assert (backlog, waited < 5.0) == (0, True)

    _produce(settings)
    waited, backlog = settle(settings, at_most=0, timeout_s=0.5, poll_s=0.1)
    assert backlog == sum(PRODUCED.values())
    assert waited >= 0.5
