"""``registered_delivery=false`` end to end: real broker, worker, sender and SMSC simulator.

The stack's SMSCs all point at a simulator running in this process (the demo simulator
configuration), so the test can read what the SMSC itself received. Messages that decline a
receipt are submitted with ``registered_delivery`` 0, get no receipt from the SMSC, never wait in
the correlator's table, and end with exactly one ``ACCEPTED`` report; the others still end on
their receipts. Route/operator/tenant windows do not count ``ACCEPTED`` at all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from connectors.smsc_sim import SimulatorThread
from pipeline.key_timers import command_keys
from schemas.batches import receipt_values
from schemas.models import (
    DeliveryReport,
    DeliveryStatus,
    ReceiptEvent,
    SubmitRequest,
    SubmitStatus,
)
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import (
    isolated_settings,
    prepared_stack,
    read_all,
    read_outcomes,
    read_records,
)
from smsflow.devstack.stack import LocalStack
from smsflow.settings import Settings
from smsflow.topics import CONFIG, DLR, DLR_RAW, DLR_TIMERS, topic_name
from tests.integration.windows import wait_for_windows
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smsc() -> Iterator[SimulatorThread]:
    with SimulatorThread(SIM_CONFIG) as sim:
        yield sim


@pytest.fixture(scope="module")
def flow_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("stack"), "norcpt")


@pytest.fixture(scope="module")
def running_stack(flow_settings: Settings, smsc: SimulatorThread) -> Iterator[LocalStack]:
    stack = prepared_stack(flow_settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG)
    # prepared_stack points every SMSC at the stack's own simulator process; use ours instead.
    config = load_yaml(PLATFORM_CONFIG)
    config = config.model_copy(update={
        "smscs": tuple(s.model_copy(update={"port": smsc.port}) for s in config.smscs)})
    apply_config(flow_settings.kafka_bootstrap, topic_name(flow_settings, CONFIG), config)
    with stack:
        warm_up(flow_settings, timeout_s=120)
        yield stack
        stack.check_alive()


def _split(requests: list[SubmitRequest]) -> tuple[list[SubmitRequest], list[SubmitRequest]]:
    """Every other message declines a receipt."""
    quiet = [r.model_copy(update={"registered_delivery": False}) for r in requests[::2]]
    return quiet, requests[1::2]


def test_no_receipt_messages_end_accepted_once_and_others_on_their_receipts(
    flow_settings: Settings, running_stack: LocalStack, smsc: SimulatorThread
) -> None:
    quiet, normal = _split(make_traffic(120, seed=120))
    quiet_ids = {r.message_id for r in quiet}
    normal_ids = {r.message_id for r in normal}
    before = smsc.stats

    result = run_flow(flow_settings, [*quiet, *normal], timeout_s=180)
    running_stack.check_alive()
    assert result.lost == 0, f"no terminal state for {result.missing[:5]}"
    assert result.duplicates == 0

    # The sender: one outcome per part, saying whether a receipt was asked for.
    sent = [s for s in read_outcomes(flow_settings)
            if s.message_id in quiet_ids | normal_ids]
    assert all(s.outcome is SubmitStatus.ACCEPTED for s in sent)
    assert Counter((s.message_id, s.part_index) for s in sent).most_common(1)[0][1] == 1
    quiet_parts = [s for s in sent if s.message_id in quiet_ids]
    normal_parts = [s for s in sent if s.message_id in normal_ids]
    assert {s.message_id for s in quiet_parts} == quiet_ids
    assert all(not s.receipt_requested for s in quiet_parts)
    assert all(s.receipt_requested for s in normal_parts)
    assert max(s.part_count for s in quiet_parts) > 1, "traffic should include multi-part"

    # The SMSC: registered_delivery 0 for exactly the quiet parts, a receipt for every other.
    after = smsc.stats
    assert after.receipts_not_requested - before.receipts_not_requested == len(quiet_parts)
    assert after.receipts_scheduled - before.receipts_scheduled == len(normal_parts)

    # The reports: exactly one per message; ACCEPTED for the quiet ones only.
    reports = [r for r in map(DeliveryReport.from_avro, read_all(flow_settings, DLR))
               if r.message_id in quiet_ids | normal_ids]
    assert Counter(r.message_id for r in reports) == Counter(quiet_ids | normal_ids)
    by_id = {r.message_id: r for r in reports}
    for message_id in quiet_ids:
        report = by_id[message_id]
        assert report.status is DeliveryStatus.ACCEPTED
        assert report.reason == "no receipt requested" and report.error_code is None
        assert len(report.smsc_message_ids) == report.parts
        assert report.submitted_at <= report.sent_at <= report.done_at
    normal_statuses = Counter(by_id[m].status.value for m in normal_ids)
    assert "ACCEPTED" not in normal_statuses
    assert normal_statuses["DELIVERED"] > len(normal_ids) // 2, normal_statuses

    # No receipt came for a quiet part, and none of them ever waited in the correlator:
    # no dlr-pending entry (so no expiry timer) and no timer command under their keys.
    quiet_keys = {f"{s.smsc_id}:{s.smsc_message_id}" for s in quiet_parts}
    receipts = {f"{e.smsc_id}:{e.smsc_message_id}"
                for record in read_all(flow_settings, DLR_RAW)
                for e in map(ReceiptEvent.from_avro, receipt_values(record))}
    assert receipts.isdisjoint(quiet_keys)
    assert {f"{s.smsc_id}:{s.smsc_message_id}" for s in normal_parts} <= receipts
    pending_keys = {json.loads(key) for key, _ in read_records(
        flow_settings, f"{flow_settings.app_id}-dlr-pending-changelog", topic_prefix=False)
        if key is not None}
    assert pending_keys.isdisjoint(quiet_keys)
    assert {f"{s.smsc_id}:{s.smsc_message_id}" for s in normal_parts} <= pending_keys
    timer_keys = {key for record in read_records(flow_settings, DLR_TIMERS)
                  for key in command_keys(*record)}
    assert timer_keys.isdisjoint(quiet_keys)


def test_windows_do_not_count_accepted(
    flow_settings: Settings, running_stack: LocalStack
) -> None:
    """The windows hold every submit and every receipt-based report, and no ACCEPTED: it is
    neither a delivery nor a failure for route health."""
    reference, windows = wait_for_windows(flow_settings)
    assert any(key.startswith("route:") for key in reference)
    assert windows == reference
    assert not any("ACCEPTED" in counts for counts in windows.values())
