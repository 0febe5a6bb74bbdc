"""Done markers forgotten through batched timer commands, on a real broker with a real worker
(pipeline/key_timers.py): every completed part and message leaves a marker that is forgotten
after ``SMSFLOW_DLR_DONE_TTL_S``; the test shortens that to seconds and reads what reached
Kafka: a tombstone on each table's changelog for every marker, and the commands that asked for
them, a few records each naming many keys (one record per key before)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import pytest

from pipeline.key_timers import KEYS_MAGIC, command_keys
from smsflow.devstack.harness import isolated_settings, read_records
from smsflow.devstack.stack import ManagedProcess, stack_env
from smsflow.settings import Settings
from smsflow.topics import DLR_PARTS_TIMERS, DLR_TIMERS, apply_topics
from tests.integration.test_delivery_tracking import (
    _producer,
    _receipt,
    _send,
    _sent,
    _wait_reports,
)

pytestmark = pytest.mark.slow

DONE_TTL_S = 3
MESSAGES = 60


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("timers"), "timers")
    apply_topics(settings)
    return settings


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[ManagedProcess]:
    process = ManagedProcess(
        "worker-delivery-0",
        [sys.executable, "-m", "smsflow.cli", "worker", "--role", "delivery"],
        settings.home / "logs" / "worker-delivery-0.log",
    )
    process.start({**stack_env(settings), "SMSFLOW_DLR_DONE_TTL_S": str(DONE_TTL_S)})
    try:
        yield process
    finally:
        process.stop()


def _tombstones(settings: Settings, table: str) -> set[str]:
    changelog = f"{settings.app_id}-{table}-changelog"
    # faust writes a table's str keys as JSON.
    return {json.loads(key) for key, value in read_records(settings, changelog, topic_prefix=False)
            if key is not None and value is None}


def test_done_markers_are_forgotten_by_a_few_commands_naming_many_keys(
    settings: Settings, worker: ManagedProcess,
) -> None:
    producer = _producer(settings)
    sent = [_sent(f"tb-{n}") for n in range(MESSAGES)]
    sent += [_sent("tb-multi", part=0, parts=2), _sent("tb-multi", part=1, parts=2)]
    for outcome in sent:
        _send(producer, settings, outcome)
    for outcome in sent:
        _send(producer, settings, _receipt(outcome))
    message_ids = {outcome.message_id for outcome in sent}
    _wait_reports(settings, message_ids, timeout_s=120, process=worker)

    correlated = {f"{outcome.smsc_id}:{outcome.smsc_message_id}" for outcome in sent}
    deadline = time.monotonic() + 60
    while True:
        parts_forgotten = correlated <= _tombstones(settings, "dlr-pending")
        messages_forgotten = message_ids <= _tombstones(settings, "dlr-parts")
        if parts_forgotten and messages_forgotten:
            break
        if not worker.alive():
            pytest.fail(f"worker died:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"done markers not forgotten {DONE_TTL_S} s after their TTL: parts "
                        f"{parts_forgotten}, messages {messages_forgotten}")
        time.sleep(1)

    for topic, keys in ((DLR_TIMERS, correlated), (DLR_PARTS_TIMERS, message_ids)):
        commands = read_records(settings, topic)
        named = [key for record in commands for key in command_keys(*record)]
        assert keys <= set(named), f"{topic}: forgotten without a command?"
        assert all(value and value.startswith(KEYS_MAGIC) for _key, value in commands)
        # One record per partition (4) and tick: the markers expire within a few ticks.
        assert len(commands) <= len(keys) / 4, f"{topic}: {len(commands)} records"
