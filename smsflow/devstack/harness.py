"""An isolated, fully prepared local stack: what the e2e tests and benchmarks run against.

Topics get a per-run prefix and the faust app a per-run id, so runs never see each other's
traffic; the SMSC simulator listens on a free port and the configuration is rewritten to match.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from schemas.batches import sent_values
from schemas.models import RoutedMessage, SubmitOutcome
from smsflow.config.kafka_io import apply_config
from smsflow.config.models import PlatformConfig
from smsflow.config.store import load_yaml
from smsflow.devstack.flowrun import warm_up
from smsflow.devstack.stack import LocalStack, stack_env
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget, kafka_connection
from smsflow.settings import Settings, WorkerRole
from smsflow.topics import CONFIG, SENT, THROTTLED, apply_topics, topic_name


def read_all(settings: Settings, name: str, *, timeout_s: float = 10.0) -> list[bytes]:
    """Every value on topic ``name`` now (read to the end of each partition)."""
    return [value or b"" for _key, value in read_records(settings, name, timeout_s=timeout_s)]


def read_outcomes(settings: Settings, *, timeout_s: float = 10.0) -> list[SubmitOutcome]:
    """Every ``SubmitOutcome`` on ``sms.sent`` now: each record's, or each of a batch's
    (schemas/batches.py)."""
    return [SubmitOutcome.from_avro(value) for record in read_all(settings, SENT,
                                                                   timeout_s=timeout_s)
            for value in sent_values(record)]


def read_records(
    settings: Settings, name: str, *, timeout_s: float = 10.0, topic_prefix: bool = True
) -> list[tuple[bytes | None, bytes | None]]:
    """Every ``(key, value)`` on topic ``name`` now (read to the end of each partition).
    ``topic_prefix=False`` for topics named by faust (table changelogs)."""
    return [
        (message.key(), message.value())
        for message in read_messages(settings, name, timeout_s=timeout_s,
                                     topic_prefix=topic_prefix)
    ]


def read_messages(
    settings: Settings, name: str, *, timeout_s: float = 10.0, topic_prefix: bool = True
) -> list[Message]:
    """Every message (key, value, headers, …) on topic ``name`` now, as :func:`read_records`."""
    topic = topic_name(settings, name) if topic_prefix else name
    consumer = Consumer({
        **client_config(kafka_connection(settings)),
        "group.id": f"reader-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "enable.auto.commit": False,
        # An empty partition's end is known when its first fetch returns: do not let the
        # broker hold that fetch for librdkafka's default 500 ms.
        "fetch.wait.max.ms": 10,
    })
    try:
        # Every partition assigned from its beginning: the records a new group would read,
        # with no group to join (nothing is committed).
        found = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        partitions = len(found)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(found)])
        messages: list[Message] = []
        eof: set[int] = set()
        while len(eof) < partitions:
            message = consumer.poll(timeout_s)
            if message is None:
                raise TimeoutError(f"timed out reading {topic}")
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"reading {topic}: {error}")
                eof.add(message.partition() or 0)
                continue
            messages.append(message)
        return messages
    finally:
        consumer.close()


def run_topic_records(bootstrap: KafkaTarget, *, timeout_s: float = 30.0) -> dict[str, int]:
    """Records written to each topic of this process's runs so far (the sum of its
    partitions' end offsets), by topic name without the run id: what a run cost the broker in
    records, table changelogs included."""
    if not RUN_IDS:
        return {}
    prefixes = tuple(p for run in RUN_IDS for p in (f"{run}.", f"smsflow-{run}-"))
    consumer = Consumer(client_config(bootstrap, **{"group.id": f"records-{uuid.uuid4()}"}))
    try:
        topics = consumer.list_topics(timeout=timeout_s).topics
        counts: dict[str, int] = {}
        for name, topic in topics.items():
            prefix = next((p for p in prefixes if name.startswith(p)), None)
            if prefix is None:
                continue
            total = 0
            for partition in topic.partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(name, partition), timeout=timeout_s)
                total += high
            counts[name.removeprefix(prefix)] = total
        return dict(sorted(counts.items()))
    finally:
        consumer.close()


def delete_run_topics(bootstrap: KafkaTarget, *, timeout_s: float = 60.0) -> int:
    """Delete the topics of every run this process prepared (flow topics ``<run id>.*`` and
    faust's ``smsflow-<run id>-*``), so a dev broker does not collect thousands of test
    topics. Only this process's runs: other test sessions may share the broker."""
    if not RUN_IDS:
        return 0
    admin = AdminClient(client_config(bootstrap))
    prefixes = tuple(p for run in RUN_IDS for p in (f"{run}.", f"smsflow-{run}-"))
    names = [t for t in admin.list_topics(timeout=timeout_s).topics if t.startswith(prefixes)]
    for future in admin.delete_topics(names, operation_timeout=timeout_s).values() if names else ():
        try:
            future.result(timeout=timeout_s)
        except KafkaException:
            pass  # already gone
    RUN_IDS.clear()
    return len(names)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


#: Run ids handed out by :func:`isolated_settings` in this process (see delete_run_topics).
RUN_IDS: list[str] = []


def isolated_settings(
    bootstrap: str, home: Path, label: str, partitions: int = 4, replication_factor: int = 1
) -> Settings:
    run_id = f"{label}-{uuid.uuid4().hex[:8]}"
    RUN_IDS.append(run_id)
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"{run_id}.",
        app_id=f"smsflow-{run_id}",
        home=home,
        partitions=partitions,
        replication_factor=replication_factor,
    )


def prepared_stack(
    settings: Settings,
    *,
    platform_config: Path,
    sim_config: Path,
    sim_port: int | None = None,
    workers: int = 1,
    worker_roles: tuple[WorkerRole, ...] = ("all",),
    senders: int = 1,
    simulator: bool = True,
    edit_config: Callable[[PlatformConfig], PlatformConfig] | None = None,
) -> LocalStack:
    """Apply topics and ``platform_config`` (every SMSC pointed at the simulator's port, a
    free one unless given) and return the stack, not yet started; its simulator reads
    ``sim_config``. Use as ``with prepared_stack(s, platform_config=…, sim_config=…) as stack:
    warm_up(s)``. The caller names both files (``smsflow demo`` has flags for them, relative to
    the current directory): an installed package has no repository to find them in.
    ``simulator=False``: the caller runs the SMSC on ``sim_port`` (then required).
    ``edit_config`` changes the configuration before it is applied (a drill's webhooks)."""
    if not simulator and sim_port is None:
        raise ValueError("simulator=False needs the sim_port the caller's SMSC listens on")
    for path in (platform_config, sim_config):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found (relative paths start at {Path.cwd()}): pass the "
                f"configuration files of your checkout"
            )
    sim_port = sim_port or free_port()
    config = load_yaml(platform_config)
    config = config.model_copy(
        update={"smscs": tuple(s.model_copy(update={"port": sim_port}) for s in config.smscs)}
    )
    if edit_config is not None:
        config = edit_config(config)
    apply_topics(settings)
    apply_config(kafka_connection(settings), topic_name(settings, CONFIG), config)
    return LocalStack(
        settings.home, stack_env(settings), sim_config.absolute(), sim_port, workers=workers,
        worker_roles=worker_roles, senders=senders, simulator=simulator,
    )


def wait_for_group(settings: Settings, members: int, *, timeout_s: float = 120.0,
                   suffix: str = "") -> None:
    """Wait until the workers' consumer group (the faust app id, + ``suffix`` for the delivery
    role's ``-delivery``) is stable with ``members`` members, so that no rebalance is still
    pending when traffic starts."""
    admin = AdminClient(client_config(kafka_connection(settings)))
    group_id = settings.app_id + suffix
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        group = admin.describe_consumer_groups([group_id])[group_id].result(10)
        if group.state == ConsumerGroupState.STABLE and len(group.members) >= members:
            return
        time.sleep(0.5)
    raise TimeoutError(f"group {group_id} not stable with {members} members")


def stage_waits_ms(settings: Settings, message_ids: Collection[str]) -> dict[str, list[float]]:
    """Per-message stage times of ``message_ids``, read back from the topics after a run:
    ``submit_to_routed`` (tenant lane and router, from the request's ``submitted_at``),
    ``routed_to_throttled`` (time in the throttle: its limits' wait, plus the ``sms.routed`` hop
    and any backlog ahead of the agent, which the records cannot tell apart) and
    ``submit_to_sent`` (to the moment its first part's first ``sms.sent`` record reached Kafka)."""
    waits: dict[str, list[float]] = {"submit_to_routed": [], "routed_to_throttled": [],
                                     "submit_to_sent": []}
    for message in read_messages(settings, THROTTLED):
        routed = RoutedMessage.from_avro(message.value())
        if routed.request.message_id in message_ids and routed.throttled_at is not None:
            waits["submit_to_routed"].append(
                (routed.routed_at - routed.request.submitted_at).total_seconds() * 1000)
            waits["routed_to_throttled"].append(
                (routed.throttled_at - routed.routed_at).total_seconds() * 1000)
    first_sent: dict[str, tuple[int, int, float]] = {}  # id -> (part, record ms, submitted ms)
    for message in read_messages(settings, SENT):
        for value in sent_values(message.value()):  # one outcome, or a batch's
            sent = SubmitOutcome.from_avro(value)
            if sent.message_id in message_ids:
                seen = (sent.part_index, message.timestamp()[1],
                        sent.submitted_at.timestamp() * 1000)
                first_sent[sent.message_id] = min(first_sent.get(sent.message_id, seen), seen)
    waits["submit_to_sent"] = [at - submitted for _part, at, submitted in first_sent.values()]
    return waits


__all__ = [
    "delete_run_topics", "free_port", "isolated_settings", "prepared_stack", "read_all",
    "read_records", "stage_waits_ms", "wait_for_group", "warm_up",
]
