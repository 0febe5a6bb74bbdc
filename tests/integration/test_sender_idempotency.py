"""Sender idempotency on the real broker and SMSC simulator (connectors/sender/ledger.py).

SIGKILL the sender mid-load: the simulator accepts each part at most once beyond the parts in
doubt, which are bounded by the in-flight window and flagged on ``sms.sent``. Then a re-send
of already submitted records (what the worker does after a crash) reaches no SMSC at all.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from connectors.sender.ledger import IN_DOUBT_HEADER
from schemas.batches import sent_values
from schemas.models import SubmitOutcome, SubmitStatus
from smsflow.config.store import load_yaml
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import (
    isolated_settings,
    prepared_stack,
    read_messages,
    read_records,
)
from smsflow.devstack.stack import LocalStack
from smsflow.settings import Settings
from smsflow.topics import SENT, THROTTLED, topic_name
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow

MESSAGES = 1500
CRASH_AFTER_TERMINAL = 300
#: Every window of every bind the killed sender had: the most that can be in doubt.
IN_FLIGHT_WINDOW = sum(s.binds * s.window for s in load_yaml(PLATFORM_CONFIG).smscs)
_STATS = re.compile(rb"submits=(\d+) \(.*?throttled=(\d+)")


@pytest.fixture
def idem_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("idem"), "idem")


@pytest.fixture
def idem_stack(idem_settings: Settings, tmp_path: Path) -> Iterator[LocalStack]:
    sim = yaml.safe_load(SIM_CONFIG.read_text(encoding="utf-8"))
    sim["stats_interval_s"] = 0.5  # the simulator's count of submits, read from its log
    sim_config = tmp_path / "smsc-sim.yaml"
    sim_config.write_text(yaml.safe_dump(sim), encoding="utf-8")
    with prepared_stack(
        idem_settings, platform_config=PLATFORM_CONFIG, sim_config=sim_config
    ) as stack:
        warm_up(idem_settings, timeout_s=120)
        yield stack


def _accepted_by_simulator(stack: LocalStack, *, settle_s: float = 2.0) -> int:
    """submit_sm the simulator answered ESME_ROK so far (its latest stats line, once two lines
    in a row agree: nothing is still arriving)."""
    log = stack.home / "logs" / "smsc-sim.log"
    previous = -1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = _STATS.findall(log.read_bytes())
        if found:
            submits, throttled = (int(n) for n in found[-1])
            if submits - throttled == previous:
                return previous
            previous = submits - throttled
        time.sleep(settle_s)
    raise TimeoutError("the simulator's submit count did not settle")


def _outcomes(settings: Settings, ids: set[str]) -> list[tuple[SubmitOutcome, bool]]:
    found = []
    for message in read_messages(settings, SENT):
        # An outcome in doubt is a record of its own, flagged (connectors/sender/
        # outcome_batches.py); the others may share a batch.
        flagged = any(header[0] == IN_DOUBT_HEADER for header in message.headers() or [])
        for value in sent_values(message.value()):
            outcome = SubmitOutcome.from_avro(value)
            if outcome.message_id in ids:
                found.append((outcome, flagged))
    return found


def _sender_caught_up(settings: Settings, timeout_s: float = 60.0) -> None:
    """The sender's group committed every sms.throttled record: it handled them all."""
    topic = topic_name(settings, THROTTLED)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"{settings.app_id}-sender", "enable.auto.commit": False})
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            committed = [c.offset for c in consumer.committed(partitions, timeout=10)]
            marks = [consumer.get_watermark_offsets(tp, timeout=10) for tp in partitions]
            if all(high <= low or offset >= high
                   for offset, (low, high) in zip(committed, marks, strict=True)):
                return
            time.sleep(0.5)
        raise TimeoutError(f"the sender did not commit every sms.throttled record: "
                           f"committed {committed}, watermarks {marks}")
    finally:
        consumer.close()


def test_sigkill_mid_load_resubmits_at_most_the_window_and_skips_worker_resends(
    idem_settings: Settings, idem_stack: LocalStack
) -> None:
    crashed: list[int] = []

    def crash_once(_counts: dict[str, int], terminal: int) -> None:
        if not crashed and terminal >= CRASH_AFTER_TERMINAL:
            crashed.append(terminal)
            idem_stack.crash_and_restart("sender")

    before = _accepted_by_simulator(idem_stack)
    requests = make_traffic(MESSAGES, seed=1414)
    result = run_flow(idem_settings, requests, timeout_s=240, on_progress=crash_once)
    assert crashed and crashed[0] < MESSAGES, "the drill never crashed the sender mid-load"
    assert result.lost == 0, f"lost {result.missing[:3]}"
    _sender_caught_up(idem_settings)

    ids = {r.message_id for r in requests}
    outcomes = _outcomes(idem_settings, ids)
    accepted = {(o.message_id, o.part_index) for o, _f in outcomes
                if o.outcome is SubmitStatus.ACCEPTED}
    flagged = {(o.message_id, o.part_index) for o, f in outcomes if f}
    at_simulator = _accepted_by_simulator(idem_stack) - before
    duplicates = at_simulator - len(accepted)
    print(f"\nsender killed after {crashed[0]} terminal: {len(accepted)} parts accepted, "
          f"{at_simulator} accepted by the simulator, {duplicates} duplicates, "
          f"{len(flagged)} parts flagged in doubt, window {IN_FLIGHT_WINDOW}")
    assert 0 <= duplicates <= IN_FLIGHT_WINDOW
    assert len(flagged) <= IN_FLIGHT_WINDOW
    assert duplicates <= len(flagged), "a part reached the SMSC twice without being flagged"

    # The worker re-sends records after a crash behind waiting records: the same records again.
    throttled = read_records(idem_settings, THROTTLED)[:200]
    sent_before = len(read_records(idem_settings, SENT))
    submitted_before = _accepted_by_simulator(idem_stack)
    producer = Producer({"bootstrap.servers": idem_settings.kafka_bootstrap})
    for key, value in throttled:
        producer.produce(topic_name(idem_settings, THROTTLED), key=key, value=value)
    assert producer.flush(30) == 0
    _sender_caught_up(idem_settings)
    time.sleep(1.0)  # one more simulator stats line after the sender's last commit
    assert _accepted_by_simulator(idem_stack) == submitted_before, "a re-send was submitted"
    assert len(read_records(idem_settings, SENT)) == sent_before
    per_part = Counter((o.message_id, o.part_index) for o, _f in _outcomes(idem_settings, ids)
                       if o.outcome is SubmitStatus.ACCEPTED)
    assert max(per_part.values()) <= 2  # at most the one in-doubt resubmission
    idem_stack.check_alive()
