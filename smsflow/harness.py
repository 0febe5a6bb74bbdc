"""An isolated, fully prepared local stack: what the e2e tests and benchmarks run against.

Topics get a per-run prefix and the faust app a per-run id, so runs never see each other's
traffic; the SMSC simulator listens on a free port and the configuration is rewritten to match.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka.admin import AdminClient

from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.flowrun import warm_up
from smsflow.settings import Settings
from smsflow.stack import LocalStack, stack_env
from smsflow.topics import CONFIG, apply_topics, topic_name

REPO = Path(__file__).resolve().parents[1]
PLATFORM_CONFIG = REPO / "config" / "platform.yaml"
SIM_CONFIG = REPO / "config" / "demo-smsc-sim.yaml"


def read_all(settings: Settings, name: str, *, timeout_s: float = 10.0) -> list[bytes]:
    """Every value on topic ``name`` now (read to the end of each partition)."""
    return [value or b"" for _key, value in read_records(settings, name, timeout_s=timeout_s)]


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
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"reader-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "enable.auto.commit": False,
    })
    try:
        consumer.subscribe([topic])
        partitions = len(consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions)
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


def delete_run_topics(bootstrap: str, *, timeout_s: float = 60.0) -> int:
    """Delete the topics of every run this process prepared (flow topics ``<run id>.*`` and
    faust's ``smsflow-<run id>-*``), so a dev broker does not collect thousands of test
    topics. Only this process's runs: other test sessions may share the broker."""
    if not RUN_IDS:
        return 0
    admin = AdminClient({"bootstrap.servers": bootstrap})
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


def isolated_settings(bootstrap: str, home: Path, label: str, partitions: int = 4) -> Settings:
    run_id = f"{label}-{uuid.uuid4().hex[:8]}"
    RUN_IDS.append(run_id)
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"{run_id}.",
        app_id=f"smsflow-{run_id}",
        home=home,
        partitions=partitions,
    )


def prepared_stack(
    settings: Settings,
    *,
    platform_config: Path = PLATFORM_CONFIG,
    sim_config: Path = SIM_CONFIG,
    sim_port: int | None = None,
) -> LocalStack:
    """Apply topics and configuration (every SMSC pointed at the simulator's port, a free one
    unless given) and return the stack, not yet started.
    Use as ``with prepared_stack(s) as stack: warm_up(s)``."""
    sim_port = sim_port or free_port()
    config = load_yaml(platform_config)
    config = config.model_copy(
        update={"smscs": tuple(s.model_copy(update={"port": sim_port}) for s in config.smscs)}
    )
    apply_topics(settings)
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG), config)
    return LocalStack(settings.home, stack_env(settings), sim_config, sim_port)


__all__ = [
    "delete_run_topics", "free_port", "isolated_settings", "prepared_stack", "read_all",
    "read_records", "warm_up",
]
