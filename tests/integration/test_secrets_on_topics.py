"""No secret value on any topic: a flow runs with every SMSC password an ``env:`` reference and
a tenant webhook secret a ``file:`` reference (a Kubernetes Secret mount), then every record of
every topic of the run (keys, values, headers; faust's changelogs too) is searched for each
value. The flow completing proves the sender resolved the references: the simulator refuses a
wrong password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from smsflow.config.kafka_io import read_config
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack
from smsflow.settings import Settings
from smsflow.topics import CONFIG, topic_name
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow

HOOK_SECRET = "hook-secret-of-acme-0123456789"


def _every_record(bootstrap: str, topics: list[str]) -> Iterator[Message]:
    """Every record of ``topics`` now: one consumer assigned to every partition, no group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=10).topics
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            for partition in metadata[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                           timeout=10)
                if high > low:
                    ends[(topic, partition)] = high
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        while ends:
            message = consumer.poll(10)
            assert message is not None, f"timed out reading {sorted(ends)[:3]}"
            assert message.error() is None, message.error()
            where = (message.topic() or "", message.partition() or 0)
            if (message.offset() or 0) + 1 >= ends.get(where, 0):
                ends.pop(where, None)
            yield message
    finally:
        consumer.close()


@pytest.fixture
def secret_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("secrets"), "secrets")


def _referenced_config(directory: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, set[str]]:
    raw = yaml.safe_load(PLATFORM_CONFIG.read_text(encoding="utf-8"))
    values: set[str] = set()
    for smsc in raw["smscs"]:
        variable = f"SMSFLOW_TEST_{smsc['id'].upper().replace('-', '_')}_PASSWORD"
        monkeypatch.setenv(variable, smsc["password"])  # the stack's processes inherit it
        values.add(smsc["password"])
        smsc["password"] = f"env:{variable}"
    mount = directory / "secrets" / "acme-bank-webhook"
    mount.parent.mkdir()
    mount.write_text(HOOK_SECRET, encoding="utf-8")
    tenant = next(t for t in raw["tenants"] if t["id"] == "acme-bank")
    tenant["webhook"] = {"url": "https://hooks.acme.example/dlr", "secret": f"file:{mount}"}
    values.add(HOOK_SECRET)
    path = directory / "platform.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path, values


@pytest.fixture
def referenced(
    secret_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[set[str]]:
    config_path, values = _referenced_config(tmp_path, monkeypatch)
    with prepared_stack(
        secret_settings, platform_config=config_path, sim_config=SIM_CONFIG
    ) as stack:
        warm_up(secret_settings, timeout_s=120)
        yield values
        stack.check_alive()


def test_no_secret_value_on_any_topic(secret_settings: Settings, referenced: set[str]) -> None:
    result = run_flow(secret_settings, make_traffic(200, seed=14), timeout_s=180)
    assert result.lost == 0 and result.statuses.total() > 0

    admin = AdminClient({"bootstrap.servers": secret_settings.kafka_bootstrap})
    names = sorted(
        name for name in admin.list_topics(timeout=10).topics
        if name.startswith((secret_settings.topic_prefix, secret_settings.app_id))
    )
    assert topic_name(secret_settings, CONFIG) in names and len(names) > 10
    searched = 0
    for message in _every_record(secret_settings.kafka_bootstrap, names):
        parts = [message.key(), message.value(), *(header[1] for header in message.headers() or [])]
        blob = b"".join(p.encode() if isinstance(p, str) else p or b"" for p in parts)
        searched += 1
        for value in referenced:
            assert value.encode() not in blob, f"a secret value is on {message.topic()}"
    assert searched > 1000

    shown = read_config(secret_settings.kafka_bootstrap, topic_name(secret_settings, CONFIG))
    text = shown.model_dump_json()  # what `smsflow config show` prints
    assert "env:SMSFLOW_TEST_SMSC_UK_PASSWORD" in text
    assert not any(value in text for value in referenced)
