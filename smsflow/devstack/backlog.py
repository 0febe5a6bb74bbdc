"""How much of what was submitted the pipeline still has to route, throttle and send.

Benchmarks that run phases back to back (bench/api.py) read this to let a phase start on a
stack that has caught up with the previous one: otherwise a latency phase measures the drain
of the phase before it. The backlog is the lag, in records, of the worker's consumer group on
``sms.submitted`` and ``sms.routed`` plus the sender's on ``sms.throttled``, from committed
offsets (no group is joined).
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition

from smsflow.kafka_clients import client_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import ROUTED, SUBMITTED, THROTTLED, topic_name

_TIMEOUT_S = 10.0


def _group_lag(settings: Settings, group: str, topics: list[str]) -> int:
    consumer = Consumer({
        **client_config(kafka_connection(settings)),
        "group.id": group, "enable.auto.commit": False,
        "client.id": f"smsflow-backlog-{uuid.uuid4().hex[:8]}",
    })
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in consumer.list_topics(topic, timeout=_TIMEOUT_S).topics[topic]
            .partitions
        ]
        lag = 0
        for committed in consumer.committed(partitions, timeout=_TIMEOUT_S):
            low, high = consumer.get_watermark_offsets(committed, timeout=_TIMEOUT_S)
            start = committed.offset if committed.offset >= 0 else low
            lag += max(0, high - start)
        return lag
    finally:
        consumer.close()


def pipeline_backlog(settings: Settings) -> int:
    """Records not yet routed, throttled or handed to the sender, by committed offsets."""
    worker_topics = [topic_name(settings, SUBMITTED), topic_name(settings, ROUTED)]
    return (_group_lag(settings, settings.app_id, worker_topics)
            + _group_lag(settings, f"{settings.app_id}-sender",
                         [topic_name(settings, THROTTLED)]))


def settle(settings: Settings, *, at_most: int, timeout_s: float,
           poll_s: float = 1.0) -> tuple[float, int]:
    """Wait until the backlog is ``at_most`` records or ``timeout_s`` has passed.

    Returns the seconds waited and the last backlog read (above ``at_most`` on a timeout:
    the caller reports it rather than pretending the stack was quiet)."""
    started = time.monotonic()
    while True:
        try:
            backlog: int | None = pipeline_backlog(settings)
        except KafkaException:
            # A leader moving or a topic just created: read again, up to the timeout.
            backlog = None
            if time.monotonic() - started >= timeout_s:
                raise
        waited = time.monotonic() - started
        if backlog is not None and (backlog <= at_most or waited >= timeout_s):
            return waited, backlog
        time.sleep(poll_s)
