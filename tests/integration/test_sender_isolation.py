"""Tenant isolation in the sender: one SMSC with a full window must not delay another's traffic.

SMSC A (its own simulator) holds every submit_sm_resp for 60 s, so A's window (4) fills with
the first four messages and the rest of A's traffic waits. B's records come after all of A's on
the same partition; they must still be submitted and their outcomes on ``sms.sent`` within a
couple of seconds. (Before the per-SMSC dispatchers, the consumer thread blocked up to 5 s per
A record waiting for A's window, and B waited behind it.)

Past its queue bound, A holds only the partitions its queued records came from: B's traffic
on another partition keeps flowing, and A's records wait in Kafka, none lost.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from connectors.producer import new_request
from connectors.sender.service import SenderService
from connectors.smsc_sim import SimulatorThread
from schemas.batches import sent_values
from schemas.models import RoutedMessage, SubmitOutcome, SubmitStatus, TextEncoding
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import isolated_settings
from smsflow.settings import Settings
from smsflow.topics import SENT, THROTTLED, apply_topics, topic_name
from tests.integration.simulators import platform_simulator
from tests.paths import PLATFORM_CONFIG

A_WINDOW = 4
A_MESSAGES = 40
B_MESSAGES = 40
B_DEADLINE_S = 3.0  # the old blocking admission waited 5 s per A record


def _sim(latency_ms: float) -> SimulatorThread:
    return platform_simulator(
        seed=3,
        profiles={"default": {"submit_latency_ms": latency_ms, "receipt_delay_ms": 10}})


def _routed(smsc_id: str, route_id: str, destination: str, n: int) -> RoutedMessage:
    now = datetime.now(UTC)
    return RoutedMessage(
        request=new_request("acme-bank", destination, f"isolation {smsc_id} {n}", now=now),
        destination=destination, route_id=route_id, smsc_id=smsc_id, operator_id="op",
        country="GB", encoding=TextEncoding.GSM7, parts=1, routed_at=now,
    )


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _start_sender(settings: Settings, slow: SimulatorThread, fast: SimulatorThread,
                  ) -> tuple[SenderService, threading.Thread]:
    """A sender whose SMSC A (smsc-uk: 1 bind, window A_WINDOW) is ``slow``, the rest
    ``fast``, running on its own thread."""
    config = load_yaml(PLATFORM_CONFIG)
    smscs = tuple(
        smsc.model_copy(update=(
            {"port": slow.port, "binds": 1, "window": A_WINDOW} if smsc.id == "smsc-uk"
            else {"port": fast.port}
        ))
        for smsc in config.smscs
    )
    service = SenderService(settings, config.model_copy(update={"smscs": smscs}),
                            group_id=f"isolation-{uuid.uuid4().hex[:8]}")
    service.drain_timeout_s = 1.0
    runner = threading.Thread(target=service.run, name="sender-under-test", daemon=True)
    runner.start()
    return service, runner


def _clients(settings: Settings) -> tuple[Producer, Consumer]:
    """A producer for sms.throttled and a reader of sms.sent from its beginning."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 1})
    reader = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap, "group.id": f"reader-{uuid.uuid4()}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    reader.subscribe([topic_name(settings, SENT)])
    return producer, reader


@pytest.fixture
def isolation_settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "isolation", partitions=1)
    apply_topics(settings)
    return settings


@pytest.fixture
def sims() -> Iterator[tuple[SimulatorThread, SimulatorThread]]:
    slow, fast = _sim(60_000), _sim(0)
    try:
        yield slow, fast
    finally:
        slow.stop()
        fast.stop()


def test_full_window_on_one_smsc_does_not_delay_another(
    isolation_settings: Settings, sims: tuple[SimulatorThread, SimulatorThread]
) -> None:
    settings = isolation_settings
    slow, fast = sims
    service, runner = _start_sender(settings, slow, fast)
    throttled = topic_name(settings, THROTTLED)
    producer, reader = _clients(settings)
    outcomes: list[SubmitOutcome] = []

    def read() -> None:
        for message in reader.consume(1000, 0.05):
            if message.error() is None:  # one outcome, or each of a batch's
                outcomes.extend(map(SubmitOutcome.from_avro, sent_values(message.value())))

    try:
        # A first: all on the one partition, ahead of every B record.
        for n in range(A_MESSAGES):
            m = _routed("smsc-uk", "uk-direct", f"+4474012{n:05d}", n)
            producer.produce(throttled, key=b"p", value=m.to_avro(throttled))
        producer.flush(10)
        _wait_for(lambda: slow.stats.submits >= A_WINDOW, 60, "A's window to fill")

        b_ids = set()
        for n in range(B_MESSAGES):
            m = _routed("smsc-de", "de-direct", f"+4915112{n:05d}", n)
            b_ids.add(m.request.message_id)
            producer.produce(throttled, key=b"p", value=m.to_avro(throttled))
        producer.flush(10)
        started = time.monotonic()

        def b_done() -> bool:
            read()
            return {o.message_id for o in outcomes} >= b_ids

        _wait_for(b_done, 30, "B's outcomes")
        elapsed = time.monotonic() - started
        print(f"\nB's {B_MESSAGES} outcomes {elapsed:.2f}s after they were written; "
              f"A submits {slow.stats.submits}, queued parts {service.queued_parts()}")
        assert elapsed < B_DEADLINE_S, f"B waited {elapsed:.2f}s behind A's full window"
        assert all(o.outcome is SubmitStatus.ACCEPTED for o in outcomes
                   if o.message_id in b_ids)
        # A's window stayed full and nothing else of A's got out: A is held, not dropped.
        assert slow.stats.submits == A_WINDOW
        assert service.queued_parts() == A_MESSAGES - A_WINDOW
        assert not [o for o in outcomes if o.smsc_id == "smsc-uk"]
    finally:
        slow.set_outage(True)  # drop A's stuck window so the sender drains quickly
        service.stop()
        runner.join(30)
        reader.close()
    assert not runner.is_alive()


def test_back_pressure_pauses_consumption_and_resumes(
    isolation_settings: Settings, sims: tuple[SimulatorThread, SimulatorThread],
) -> None:
    """A slow SMSC's queue stops growing at the bound (the consumer pauses instead of
    blocking), and consumption resumes as it drains: every message still goes out once."""
    limit = 12
    settings = isolation_settings.model_copy(update={"sender_max_queued_parts_per_smsc": limit})
    _, fast = sims
    fast.set_profile("default", submit_latency_ms=100)  # window 4 -> ~40 submits/s
    config = load_yaml(PLATFORM_CONFIG)
    smscs = tuple(
        smsc.model_copy(update={"port": fast.port, "binds": 1, "window": A_WINDOW})
        for smsc in config.smscs
    )
    service = SenderService(settings, config.model_copy(update={"smscs": smscs}),
                            group_id=f"isolation-{uuid.uuid4().hex[:8]}")
    runner = threading.Thread(target=service.run, name="sender-under-test", daemon=True)
    runner.start()
    throttled = topic_name(settings, THROTTLED)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 1})
    total = 120
    try:
        for n in range(total):
            m = _routed("smsc-uk", "uk-direct", f"+4474012{n:05d}", n)
            producer.produce(throttled, key=b"p", value=m.to_avro(throttled))
        producer.flush(10)
        peak = 0

        def all_sent() -> bool:
            nonlocal peak
            peak = max(peak, service.queued_parts())
            return fast.stats.submits >= total

        _wait_for(all_sent, 60, "every message to be submitted")
        print(f"\npauses {service.stats['pauses']}, peak queued parts {peak}")
        assert service.stats["pauses"] >= 1
        assert peak <= limit + 1  # one record past the bound at most (single-part messages)
        _wait_for(lambda: service.stats["parts_accepted"] >= total, 30, "outcomes")
        assert fast.stats.submits == total  # resumed without skipping or repeating
    finally:
        service.stop()
        runner.join(30)
    assert not runner.is_alive()


def test_an_smsc_over_its_queue_bound_pauses_only_its_partitions(
    kafka_bootstrap: str, tmp_path: Path, sims: tuple[SimulatorThread, SimulatorThread]
) -> None:
    """A (holding every response) past its queue bound: partition 0, where A's records are,
    pauses; B's records on partition 1 still go out at once. When A answers again, its
    records waiting in Kafka follow: every A message gets its outcome."""
    limit = 10
    settings = isolated_settings(kafka_bootstrap, tmp_path, "isolation2", partitions=2)
    settings = settings.model_copy(update={"sender_max_queued_parts_per_smsc": limit})
    apply_topics(settings)
    slow, fast = sims
    service, runner = _start_sender(settings, slow, fast)
    throttled = topic_name(settings, THROTTLED)
    producer, reader = _clients(settings)
    outcome_ids: set[str] = set()

    def read() -> None:
        for message in reader.consume(1000, 0.05):
            if message.error() is None:  # one outcome, or each of a batch's
                outcome_ids.update(SubmitOutcome.from_avro(value).message_id
                                   for value in sent_values(message.value()))

    def write(smsc_id: str, route_id: str, prefix: str, partition: int, n: int) -> set[str]:
        ids = set()
        for i in range(n):
            m = _routed(smsc_id, route_id, f"{prefix}{partition}{i:04d}", i)
            ids.add(m.request.message_id)
            producer.produce(throttled, value=m.to_avro(throttled), partition=partition)
        producer.flush(10)
        return ids

    try:
        a_ids = write("smsc-uk", "uk-direct", "+447401", 0, A_MESSAGES)
        _wait_for(lambda: slow.stats.submits >= A_WINDOW, 60, "A's window to fill")
        _wait_for(lambda: service.stats["pauses"] >= 1, 10, "partition 0 to pause")
        queued_a = service.queued_parts_by_smsc().get("smsc-uk", 0)
        # Went over its bound (pausing partition 0); a round never takes more than the room.
        assert limit // 2 < queued_a <= limit + 1
        b_ids = write("smsc-de", "de-direct", "+491511", 1, B_MESSAGES)
        started = time.monotonic()

        def b_done() -> bool:
            read()
            return outcome_ids >= b_ids

        _wait_for(b_done, 30, "B's outcomes")
        elapsed = time.monotonic() - started
        print(f"\nB's {B_MESSAGES} outcomes on partition 1 {elapsed:.2f}s after they were "
              f"written; A queued {queued_a} of {A_MESSAGES}, A submits {slow.stats.submits}")
        assert elapsed < B_DEADLINE_S, f"B waited {elapsed:.2f}s behind A's paused partition"
        # The rest of A's records stayed in Kafka (partition 0 paused), none submitted.
        assert service.queued_parts_by_smsc().get("smsc-uk", 0) == queued_a
        assert slow.stats.submits == A_WINDOW
        assert not outcome_ids & a_ids

        # A answers again: its held records follow, none lost.
        slow.set_profile("default", submit_latency_ms=0)
        slow.set_outage(True)  # drop the stuck window (those parts are resubmitted, in doubt)
        _wait_for(lambda: slow.stats.sessions == 0, 10, "A's session to drop")
        slow.set_outage(False)

        def a_done() -> bool:
            read()
            return outcome_ids >= a_ids

        _wait_for(a_done, 60, "every A message's outcome")
        assert service.queued_parts() == 0
    finally:
        slow.set_outage(True)
        service.stop()
        runner.join(30)
        reader.close()
    assert not runner.is_alive()
