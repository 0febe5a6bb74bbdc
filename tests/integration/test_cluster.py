"""The 3-node local cluster (``smsflow cluster``) really replicates: a SIGKILLed node loses no
acknowledged record, producing and consuming carry on, and the node rejoins the ISR.

Runs a private cluster (its own root under pytest's tmp dir, ports 19292-19294 and
19392-19394), never the shared broker; it is stopped at the end even when the test fails.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from smsflow.devstack.cluster import LocalCluster

PARTITIONS = 3
BATCH = 2000
STOP_GRACE_S = 5.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # Tied to this test process: a killed run must not leave three JVMs on these fixed ports.
    local = LocalCluster(Path(tmp_path_factory.mktemp("cluster")), port=19292,
                         controller_port=19392, exit_with_starter=True)
    try:
        local.start(timeout_s=120)
        yield local
    finally:
        # The test is over and the cluster is thrown away: a short SIGTERM grace, then SIGKILL.
        # Three nodes stopping at once wait out their controlled shutdown (no quorum left to
        # grant it) and hit the default 30 s stop timeout; nothing here checks a clean stop.
        local.stop(timeout_s=STOP_GRACE_S)


def _isr(admin: AdminClient, topic: str) -> dict[int, set[int]]:
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: set(meta.isrs) for p, meta in partitions.items()}


def _describe(admin: AdminClient, resource: ConfigResource, timeout_s: float) -> Any:
    """The topic's configuration; UNKNOWN_TOPIC_OR_PART is retried until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return admin.describe_configs([resource])[resource].result(10)
        except KafkaException as exc:
            if (exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART
                    or time.monotonic() > deadline):
                raise
            time.sleep(0.5)


def _wait_isr(admin: AdminClient, topic: str, size: int, timeout_s: float) -> dict[int, set[int]]:
    deadline = time.monotonic() + timeout_s
    while True:
        isr = _isr(admin, topic)
        # Every partition must be listed: a node that has not applied the new topic yet
        # answers with none, and all() of nothing is true.
        if len(isr) == PARTITIONS and all(len(members) == size for members in isr.values()):
            return isr
        if time.monotonic() > deadline:
            raise AssertionError(f"ISR of {topic} not {size} after {timeout_s}s: {isr}")
        time.sleep(0.5)


def _produce(bootstrap: str, topic: str, values: range) -> None:
    """acks=all, idempotent: every record must be acknowledged by min ISR (2) replicas."""
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    for value in values:
        producer.produce(topic, str(value).encode(), key=str(value).encode(),
                         on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0, "records still unacknowledged after 60 s"
    assert failures == []


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    values: list[int] = []
    deadline = time.monotonic() + timeout_s
    try:
        consumer.subscribe([topic])
        while len(values) < expected and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                values.append(int(message.value() or b"-1"))
    finally:
        consumer.close()
    return values


def test_a_killed_node_loses_nothing_and_rejoins_the_isr(cluster: LocalCluster) -> None:
    bootstrap = cluster.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"cluster-test-{uuid.uuid4().hex[:12]}"
    # No replication factor given: the cluster's default (3) must apply.
    admin.create_topics([NewTopic(topic, PARTITIONS)])[topic].result(30)
    # Every node has the topic in its metadata before its configuration is asked for: the node
    # answering DescribeConfigs may not have applied the new topic yet (seen under load).
    assert _wait_isr(admin, topic, 3, 30) == {p: {1, 2, 3} for p in range(PARTITIONS)}
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    config = _describe(admin, resource, 30)
    assert config["min.insync.replicas"].value == "2"

    _produce(bootstrap, topic, range(BATCH))
    # Kill the node leading partition 0, so that at least one leader really fails over.
    victim = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    assert cluster.kill(victim) is not None
    assert cluster.pids()[victim] is None
    _produce(bootstrap, topic, range(BATCH, 2 * BATCH))  # acks=all still met by 2 of 3
    shrunk = _wait_isr(admin, topic, 2, 30)
    assert all(victim not in members for members in shrunk.values())
    values = _consume_all(bootstrap, topic, 2 * BATCH)
    assert sorted(values) == list(range(2 * BATCH)), "lost or duplicated records"

    cluster.restart(victim, timeout_s=90)
    assert _wait_isr(admin, topic, 3, 60) == {p: {1, 2, 3} for p in range(PARTITIONS)}
    _produce(bootstrap, topic, range(2 * BATCH, 3 * BATCH))
    assert sorted(_consume_all(bootstrap, topic, 3 * BATCH)) == list(range(3 * BATCH))
