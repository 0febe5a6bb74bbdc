"""Bind leases on the real broker and SMSC simulator (connectors/sender/bind_slots.py).

Three sender processes, an SMSC account that allows two binds (the simulator refuses a third
with ESME_RBINDFAIL, as a real SMSC does): the simulator never sees more than two, the sender
without a slot passes its share of the traffic to a holder (connectors/sender/relay.py), and
SIGKILL of a holder moves its slot to the third sender within seconds. Every message is
submitted in both phases.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState, Producer
from confluent_kafka.admin import AdminClient

from connectors.producer import new_request
from connectors.sender.bind_slots import SESSION_TIMEOUT_MS
from connectors.sender.relay import RELAYED_HEADER
from connectors.smsc_sim import SimulatorThread
from schemas.models import RoutedMessage, SmscBindStatus, SubmitStatus, TextEncoding
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import isolated_settings, read_messages, read_outcomes, read_records
from smsflow.devstack.stack import ManagedProcess, stack_env
from smsflow.settings import Settings
from smsflow.topics import CONFIG, SMSC_BINDS, THROTTLED, apply_topics, topic_name
from tests.integration.simulators import platform_simulator, pointed_at
from tests.integration.waiting import wait_until
from tests.paths import PLATFORM_CONFIG

pytestmark = pytest.mark.slow

SENDERS = 3
ALLOWANCE = 2  # smsc-uk's binds in config/platform.yaml
PARTITIONS = 6
MESSAGES = 120
#: A killed holder's slot moves after the group's session timeout; then the bind itself.
SLOT_MOVE_BUDGET_S = SESSION_TIMEOUT_MS / 1000 + 14


class BindSampler:
    """The most binds the simulator's smsc-uk account held at once, sampled every 20 ms (the
    simulator's own peak counter checks the same between samples)."""

    def __init__(self, sim: SimulatorThread) -> None:
        self._sim = sim
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._sim.account_binds("smsc-uk"))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def lease_settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    return isolated_settings(kafka_bootstrap, tmp_path, "leases", partitions=PARTITIONS)


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    simulator = platform_simulator(
        limit_binds=True, seed=11,
        profiles={"default": {"receipt_delay_ms": 10, "delivery_ratio": 1.0}})
    yield simulator
    simulator.stop()


def _publish(settings: Settings, count: int, label: str) -> set[str]:
    """``count`` messages for smsc-uk, spread over every sms.throttled partition."""
    throttled = topic_name(settings, THROTTLED)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    ids = set()
    for n in range(count):
        now = datetime.now(UTC)
        routed = RoutedMessage(
            request=new_request("acme-bank", f"+4474012{n:05d}", f"{label} {n}", now=now),
            destination=f"+4474012{n:05d}", route_id="uk-direct", smsc_id="smsc-uk",
            operator_id="gb-ee", country="GB", encoding=TextEncoding.GSM7, parts=1,
            routed_at=now,
        )
        ids.add(routed.request.message_id)
        producer.produce(throttled, key=b"uk-direct", value=routed.to_avro(throttled),
                         partition=n % PARTITIONS)
    assert producer.flush(30) == 0
    return ids


def _accepted(settings: Settings, ids: set[str]) -> set[str]:
    return {o.message_id for o in read_outcomes(settings)
            if o.message_id in ids and o.outcome is SubmitStatus.ACCEPTED}


def _groups_settled(settings: Settings, members: int) -> bool:
    """The senders' record group and bind-slot group are both stable with ``members``."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    groups = [f"{settings.app_id}-sender", f"{settings.app_id}-bind-slots"]
    described = [future.result(10) for future in admin.describe_consumer_groups(groups).values()]
    return all(g.state == ConsumerGroupState.STABLE and len(g.members) == members
               for g in described)


def _uk_holder_pids(settings: Settings) -> set[int]:
    """Sender processes whose latest report says they hold a bound smsc-uk bind."""
    latest: dict[bytes, bytes | None] = {}
    for key, value in read_records(settings, SMSC_BINDS):
        latest[key or b""] = value
    pids = set()
    for key, value in latest.items():
        if value is None or not key.startswith(b"smsc-uk/"):
            continue
        if SmscBindStatus.from_avro(value).bound > 0:
            pids.add(int(key.decode().rsplit("-", 1)[1]))
    return pids


def test_three_senders_never_exceed_two_binds_and_a_killed_holders_slot_moves(
    lease_settings: Settings, sim: SimulatorThread, tmp_path: Path
) -> None:
    settings = lease_settings
    apply_topics(settings)
    config = pointed_at(load_yaml(PLATFORM_CONFIG), sim.port)
    assert {s.id: s.binds for s in config.smscs}["smsc-uk"] == ALLOWANCE
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG), config)
    env = {**stack_env(settings), "SMSFLOW_SENDER_BIND_LEASES": "true"}
    senders = [
        ManagedProcess(f"sender-{i}",
                       [sys.executable, "-m", "smsflow.cli", "sender", "--metrics-port", "0"],
                       tmp_path / "logs" / f"sender-{i}.log")
        for i in range(SENDERS)
    ]
    sampler = BindSampler(sim)
    try:
        for sender in senders:
            sender.start(env)
        wait_until(lambda: _groups_settled(settings, SENDERS), timeout_s=90,
                   what="three senders in the record and bind-slot groups")
        wait_until(lambda: sim.account_binds("smsc-uk") == ALLOWANCE, timeout_s=30,
                   what="two smsc-uk binds held by the senders")

        first = _publish(settings, MESSAGES, "before")
        wait_until(lambda: _accepted(settings, first) == first, timeout_s=120,
                   what="every message of the first phase accepted by the SMSC")
        relayed = [m for m in read_messages(settings, THROTTLED)
                   if any(header[0] == RELAYED_HEADER for header in (m.headers() or []))]
        assert relayed, "the sender without a slot passed its share on (a relay)"

        (victim_pid, *_) = sorted(_uk_holder_pids(settings))
        victim = next(s for s in senders if s.process is not None
                      and s.process.pid == victim_pid)
        killed_at = time.monotonic()
        os.kill(victim_pid, signal.SIGKILL)
        assert victim.process is not None
        victim.process.wait(10)
        wait_until(lambda: sim.account_binds("smsc-uk") < ALLOWANCE, timeout_s=10,
                   what="the SMSC noticed the killed holder's bind")
        wait_until(lambda: sim.account_binds("smsc-uk") == ALLOWANCE, timeout_s=SLOT_MOVE_BUDGET_S,
                   what="the killed holder's slot taken by the third sender")
        moved_after_s = time.monotonic() - killed_at

        second = _publish(settings, MESSAGES, "after")
        wait_until(lambda: _accepted(settings, second) == second, timeout_s=120,
                   what="every message of the second phase accepted by the SMSC")
    finally:
        sampler.stop()
        for sender in senders:
            sender.stop()
    assert sampler.peak <= ALLOWANCE
    stats = sim.stats
    assert stats.peak_account_binds <= ALLOWANCE, "no account ever held more than allowed"
    # The simulator refuses a bind over the limit, so the peaks alone could not fail: without
    # leases three senders would try six binds and four would be refused here.
    assert stats.bind_failures == 0, "a sender tried a bind over the SMSC's allowance"
    print(f"slot moved {moved_after_s:.1f}s after SIGKILL; {len(relayed)} relayed; "
          f"bind refusals {stats.bind_failures}")
