"""Workers split by role (pipeline/roles.py) against the real broker.

The switch drill: a platform running one worker of every stage is moved to a routing worker and
a delivery worker while traffic flows and receipts are still outstanding (the simulator holds
them for seconds), and a split platform back to one worker of every stage. The new workers
restore the pending deliveries from the changelogs the old ones wrote and start where the old
shape's groups had reached: every message still gets exactly one report. The hand-over itself
is checked on committed positions, both ways, and it refuses to start a worker while the other
shape consumes the delivery topics.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from pipeline.roles import DELIVERY_GROUP_SUFFIX, RoleConflict, hand_over
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack
from smsflow.settings import Settings, WorkerRole
from smsflow.topics import DLR_RAW, SENT, apply_topics, topic_name
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow


def _slow_receipts(tmp_path: Path) -> Path:
    """The demo simulator with every receipt held ~3 s: deliveries are pending at the switch."""
    config = yaml.safe_load(SIM_CONFIG.read_text())
    for profile in config["profiles"].values():
        profile["receipt_delay_ms"] = 3000
    path = tmp_path / "slow-receipts-sim.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("running", "refused_role", "new_roles"), [
    pytest.param(("all",), "delivery", ("routing", "delivery"), id="to-the-split"),
    pytest.param(("routing", "delivery"), "all", ("all",), id="back-to-all"),
])
def test_switching_a_running_platform_between_shapes_loses_and_repeats_nothing(
    kafka_bootstrap: str, tmp_path: Path, running: tuple[WorkerRole, ...],
    refused_role: WorkerRole, new_roles: tuple[WorkerRole, ...],
) -> None:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "roles")
    steps: list[str] = []
    stop = threading.Event()
    with prepared_stack(settings, platform_config=PLATFORM_CONFIG,
                        sim_config=_slow_receipts(tmp_path), worker_roles=running) as stack:
        warm_up(settings, timeout_s=120)
        old_workers = [p.name for p in stack.processes if p.name.startswith("worker-")]

        def switch() -> None:
            if stop.wait(8.0):
                return
            # Beside the running shape, a worker of the other shape refuses to start...
            name = stack.add_worker(refused_role)
            refused = next(p for p in stack.processes if p.name == name)
            try:
                refused_with = refused.process.wait(60) if refused.process else None
            except subprocess.TimeoutExpired:
                refused_with = None  # it runs: the assertion below reports it
            refused.stop()
            stack.processes.remove(refused)
            steps.append(f"{refused.name} beside {old_workers} exited {refused_with}")
            # ...and the new shape starts once the old one is gone.
            for old in old_workers:
                stack.stop_process(old)
            started = [stack.add_worker(role) for role in new_roles]
            steps.append(f"stopped {old_workers}, started {started}")

        switcher = threading.Thread(target=switch)
        switcher.start()
        try:
            result = run_flow(settings, make_traffic(1_500, seed=5), timeout_s=150,
                              rate_per_s=50.0, late_duplicates_s=5.0)  # ~35 s when it passes
        finally:
            stop.set()
            switcher.join()
        stack.check_alive()
    print(f"\nrole switch: {steps}; {result.summary()}")
    assert len(steps) == 2, f"traffic ended before the switch: {steps}"
    assert steps[0].endswith("exited 2"), steps
    assert result.lost == 0, f"{result.lost} lost, e.g. {result.missing[:3]}"
    assert result.duplicates == 0


def _role(settings: Settings, role: str) -> Settings:
    return settings.model_copy(update={"worker_role": role})


def _commit(settings: Settings, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic_name(settings, topic), partition, offset)
                                 for (topic, partition), offset in offsets.items()],
                        asynchronous=False)
    finally:
        consumer.close()


def _positions(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        partitions = [TopicPartition(topic_name(settings, topic), p)
                      for topic in (SENT, DLR_RAW) for p in range(settings.partitions)]
        return {(tp.topic.removeprefix(settings.topic_prefix), tp.partition): tp.offset
                for tp in consumer.committed(partitions, timeout=10) if tp.offset >= 0}
    finally:
        consumer.close()


@pytest.fixture
def role_settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "handover", partitions=2)
    apply_topics(settings)
    return settings


def test_the_delivery_group_starts_where_the_app_group_had_reached_and_back(
    role_settings: Settings,
) -> None:
    base, delivery = role_settings.app_id, role_settings.app_id + DELIVERY_GROUP_SUFFIX
    _commit(role_settings, base, {(SENT, 0): 40, (SENT, 1): 7, (DLR_RAW, 0): 12})

    assert hand_over(_role(role_settings, "routing")) == 0  # the app group's own positions
    assert hand_over(_role(role_settings, "delivery")) == 3
    assert _positions(role_settings, delivery) == {(SENT, 0): 40, (SENT, 1): 7, (DLR_RAW, 0): 12}
    assert hand_over(_role(role_settings, "delivery")) == 0  # steady: nothing is ahead

    # The split ran on; going back to ``all`` takes the delivery group's positions where ahead.
    _commit(role_settings, delivery, {(SENT, 0): 95, (DLR_RAW, 1): 3})
    assert hand_over(_role(role_settings, "all")) == 2
    assert _positions(role_settings, base) == {(SENT, 0): 95, (SENT, 1): 7, (DLR_RAW, 0): 12,
                                               (DLR_RAW, 1): 3}


@contextmanager
def _live_member(settings: Settings, group: str, topic: str) -> Iterator[Consumer]:
    """A consumer of ``topic`` in ``group``, assigned its partitions (a running worker)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    consumer.subscribe([topic_name(settings, topic)])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.2)
    assert consumer.assignment(), f"the member of {group} was never assigned {topic}"
    try:
        yield consumer
    finally:
        consumer.close()


def test_a_delivery_worker_refuses_to_start_beside_a_worker_of_every_stage(
    role_settings: Settings,
) -> None:
    group = role_settings.app_id
    with _live_member(role_settings, group, SENT):  # a worker of every stage
        with pytest.raises(RoleConflict, match=f"role all \\(group {group}\\)"):
            hand_over(_role(role_settings, "delivery"))
        assert hand_over(_role(role_settings, "routing")) == 0  # routing shares that group


def test_positions_are_not_moved_under_a_live_member_of_the_group(
    role_settings: Settings,
) -> None:
    """Kafka moves only an empty group's positions: the worker says so instead of starting
    from positions behind the other shape's (it would report again what was reported)."""
    base, delivery = role_settings.app_id, role_settings.app_id + DELIVERY_GROUP_SUFFIX
    _commit(role_settings, base, {(SENT, 0): 40})
    with _live_member(role_settings, delivery, DLR_RAW):
        with pytest.raises(RoleConflict, match=f"cannot move group {delivery}"):
            hand_over(_role(role_settings, "delivery"))
    assert hand_over(_role(role_settings, "delivery")) == 1  # once it is gone
