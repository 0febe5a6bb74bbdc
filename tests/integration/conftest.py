"""Fixtures for tests that talk to a real Kafka broker.

* ``kafka_bootstrap`` (session): ``$SMSFLOW_KAFKA_BOOTSTRAP`` if set (an existing cluster, nothing
  is started); otherwise the local broker of ``<repo>/.smsflow`` on 127.0.0.1:9092 — reused if it
  already runs, started if not. The last test session to end stops it, if a test session
  started it (``smsflow.devstack.shared_service``): a broker started by hand is left running,
  and a session running beside this one keeps its broker.
* ``topic_factory`` (function): ``topic_factory(partitions=1, suffix="", config=None) -> name``
  creates a uniquely named topic (prefix from the test name + a uuid) and deletes it afterwards.

Every test collected from this directory is marked ``integration`` automatically.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.wire import registry_url
from smsflow.devstack.broker import LocalBroker, resolve_bootstrap
from smsflow.devstack.harness import delete_run_topics
from smsflow.devstack.schema_registry import LocalSchemaRegistry
from smsflow.devstack.shared_service import SharedByTestSessions
from tests.paths import REPO_ROOT

HERE = Path(__file__).resolve().parent
TOPIC_TIMEOUT_S = 30.0

TopicFactory = Callable[..., str]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


def local_broker() -> LocalBroker:
    """The repo's shared dev broker (``<repo>/.smsflow``, port 9092 unless SMSFLOW_KAFKA_PORT)."""
    return LocalBroker.from_env(home=REPO_ROOT / ".smsflow")


def _clean_up(bootstrap: str) -> None:
    """Delete this session's run topics, unless SMSFLOW_KEEP_TEST_TOPICS=1 (to inspect them)."""
    if os.environ.get("SMSFLOW_KEEP_TEST_TOPICS") != "1":
        delete_run_topics(bootstrap)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = resolve_bootstrap()
    if external:
        yield external
        _clean_up(external)
        return
    broker = local_broker()
    # Reused when it already runs; stopped by the last test session out, if one started it.
    sessions = SharedByTestSessions(broker.state_dir)
    bootstrap = sessions.enter(lambda: (broker.start(), broker.launched))
    try:
        yield bootstrap
        _clean_up(bootstrap)
    finally:
        # Kafka clients that tests dropped but cycles still hold would retry a stopped
        # broker until exit, flooding the log with "Connection refused": free them first.
        gc.collect()
        sessions.leave(broker.stop)


@pytest.fixture
def topic_factory(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[TopicFactory]:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    prefix = _topic_prefix(request.node.name)
    created: list[str] = []

    def create(partitions: int = 1, suffix: str = "", config: dict[str, str] | None = None) -> str:
        name = "-".join(part for part in (prefix, suffix, uuid.uuid4().hex[:12]) if part)
        # replication_factor=-1: the cluster's default (1 locally, more on a real cluster).
        topic = NewTopic(
            name, num_partitions=partitions, replication_factor=-1, config=config or {}
        )
        admin.create_topics([topic])[name].result(timeout=TOPIC_TIMEOUT_S)
        created.append(name)
        _wait_until_visible(admin, name, partitions)
        return name

    yield create

    if created:
        for future in admin.delete_topics(created, operation_timeout=TOPIC_TIMEOUT_S).values():
            with contextlib.suppress(KafkaException):  # already gone is fine
                future.result(timeout=TOPIC_TIMEOUT_S)


def _topic_prefix(test_name: str) -> str:
    """A legal topic-name prefix from the test's name: ``test_x[a-1]`` -> ``test_x-a-1``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", test_name).strip("-.")
    return cleaned[:120] or "test"


def _wait_until_visible(admin: AdminClient, name: str, partitions: int) -> None:
    """CreateTopics returns once the controller committed the topic; wait until the broker's
    metadata shows every partition with a leader, so the first produce does not race it."""
    deadline = time.monotonic() + TOPIC_TIMEOUT_S
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=name, timeout=5)
        topic = metadata.topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        time.sleep(0.1)  # metadata propagation inside one broker takes milliseconds
    raise AssertionError(f"topic {name} not visible with {partitions} partitions")


def local_registry() -> LocalSchemaRegistry:
    return LocalSchemaRegistry.from_env(home=REPO_ROOT / ".smsflow")


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """A real Confluent-compatible registry (Apicurio, started from its Maven Central
    distribution), or the one named by ``SMSFLOW_SCHEMA_REGISTRY_URL``."""
    registry = local_registry()
    external = registry_url()
    if external and not registry.is_this(external):
        yield external
        return
    sessions = SharedByTestSessions(registry.state_dir)
    url = sessions.enter(lambda: (registry.start(), registry.launched))
    try:
        yield url
    finally:
        sessions.leave(registry.stop)
