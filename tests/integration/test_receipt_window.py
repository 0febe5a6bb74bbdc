"""The receipt window: the sender SIGKILLed after a receipt arrived and before Kafka stored it.

A real broker, worker, sender and SMSC simulator. The sender runs with the test-only fault
``SMSFLOW_TEST_HOLD_RECEIPT`` (connectors/sender/faults.py): it holds the first receipt after the
``deliver_sm`` arrived and before producing its ``ReceiptEvent`` (it never produces it), while
its binds go on working. The test SIGKILLs it there and starts a sender without the fault. The
SMSC got no
``deliver_sm_resp``, so it delivers the receipt again on the new bind, and the message is
reported DELIVERED from that receipt. Had the sender acknowledged before storing, the SMSC would
hold nothing to re-send: the message would end EXPIRED (its validity and the expiry grace are
short here, so that report arrives within the test's deadline) and the test fails.
"""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from connectors.producer import SmsProducer, new_request
from connectors.sender.faults import ENV_HOLD_RECEIPT
from connectors.smsc_sim import SimulatorThread
from connectors.terminal_reader import TerminalReader
from schemas.models import DeliveryReport, DeliveryStatus
from smsflow.devstack.harness import isolated_settings, prepared_stack, read_outcomes
from smsflow.settings import Settings
from smsflow.topics import DLR, REJECTED, SUBMITTED, THROTTLED, topic_name
from tests.integration.waiting import wait_until, worker_consumed
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow

#: Short enough that a lost receipt turns into our own EXPIRED report within the deadline.
VALIDITY_S = 40
EXPIRY_GRACE_S = 5


def _sent_ids(settings: Settings, message_id: str) -> list[str]:
    found = []
    for outcome in read_outcomes(settings):
        if outcome.message_id == message_id and outcome.smsc_message_id:
            found.append(outcome.smsc_message_id)
    return found


def _report(reader: TerminalReader, message_id: str, timeout_s: float) -> DeliveryReport:
    reports: list[DeliveryReport] = []

    def arrived() -> bool:
        for terminal in reader.poll(timeout_s=0.5):
            if terminal.report is not None and terminal.report.message_id == message_id:
                reports.append(terminal.report)
            assert terminal.rejection is None or terminal.rejection.message_id != message_id, (
                f"rejected: {terminal.rejection}")
        return bool(reports)

    wait_until(arrived, timeout_s=timeout_s, what=f"a delivery report for {message_id}")
    return reports[0]


def test_sigkill_between_receipt_and_store_redelivers_the_receipt(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "rcptwin", partitions=1)
    sim_config = yaml.safe_load(SIM_CONFIG.read_text(encoding="utf-8"))
    sim_config.update(profiles={"default": {"delivery_ratio": 1.0, "receipt_delay_ms": 50}},
                      default_profile="default", stats_interval_s=0)
    marker = tmp_path / "held-receipt"
    with SimulatorThread(sim_config) as sim:
        stack = prepared_stack(settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG,
                               sim_port=sim.port, senders=0, simulator=False)
        stack.env["SMSFLOW_DLR_EXPIRY_GRACE_S"] = str(EXPIRY_GRACE_S)
        reader = TerminalReader(settings.kafka_bootstrap, topic_name(settings, DLR),
                                topic_name(settings, REJECTED))
        with stack:
            stack.add_sender("sender", **{ENV_HOLD_RECEIPT: str(marker)})
            request = new_request("acme-bank", "+447401200002", "receipt window",
                                  now=datetime.now(UTC))
            request = request.model_copy(update={"validity_s": VALIDITY_S})
            producer = SmsProducer(settings.kafka_bootstrap, topic_name(settings, SUBMITTED))
            producer.submit(request)
            assert producer.flush(30) == 0 and not producer.failed

            # The receipt reached the sender, which holds it before producing: unanswered.
            wait_until(marker.is_file, timeout_s=90, what="the sender to hold the receipt")
            held_id = marker.read_text(encoding="utf-8")
            assert sim.stats.receipts_acked == 0, "a receipt was acknowledged before it was stored"
            assert sim.stats.receipts_unacked == 1
            # Its submit is settled (outcome stored, record committed): the restarted sender
            # skips it, so the only way to a report is the held receipt, delivered again.
            wait_until(lambda: held_id in _sent_ids(settings, request.message_id),
                       timeout_s=30, what="the submit outcome on sms.sent")
            worker_consumed(settings, [THROTTLED], group=f"{settings.app_id}-sender")

            pid = stack.pids()["sender"]
            os.killpg(pid, signal.SIGKILL)
            stack.stop_process("sender")
            # Its binds are gone and the unanswered receipt is queued again (once per dying bind
            # it was offered to while the others closed).
            sim.wait_for(lambda s: s.sessions == 0 and s.receipts_requeued >= 1, timeout=10)
            stack.add_sender("sender")  # without the fault

            report = _report(reader, request.message_id, timeout_s=VALIDITY_S + 60)
        reader.close()
        stats = sim.stats
    print(f"\nheld receipt {held_id}; report {report.status.value} from "
          f"{report.smsc_message_ids}; simulator {stats}")
    assert report.status is DeliveryStatus.DELIVERED, f"reported {report.status.value}, not " \
        "from the receipt the SMSC delivered again"
    assert report.smsc_message_ids == [held_id]
    # One receipt made, sent more than once, acknowledged once: by the sender that stored it.
    assert stats.receipts_scheduled == 1 and stats.receipts_sent >= 2
    assert stats.receipts_acked == 1
    assert _sent_ids(settings, request.message_id) == [held_id], "the part was submitted again"
