"""Reference check of the tracking windows: what the worker's ``tracking-windows`` table holds
(read back from its changelog topic) against counts computed from the raw events on
``sms.sent`` and ``sms.dlr``."""

from __future__ import annotations

import json
import time
from collections import Counter

from pipeline.tracking_policy import window_spec
from schemas.batches import sent_values
from schemas.models import DeliveryReport, SubmitOutcome, SubmitStatus
from smsflow.devstack.harness import read_all, read_records
from smsflow.domain.receipts import DeliveryStatus
from smsflow.domain.tracking import NEUTRAL_STATUSES, WindowState
from smsflow.domain.tracking.windows import stats
from smsflow.settings import Settings
from smsflow.topics import DLR, SENT

#: Per window key: submits accepted/failed (per part) and terminal reports by status (the
#: neutral ACCEPTED reports are not counted, as in the worker).
Totals = dict[str, Counter[str]]


def reference_totals(settings: Settings) -> Totals:
    totals: Totals = {}

    def add(keys: tuple[str, ...], what: str) -> None:
        for key in keys:
            totals.setdefault(key, Counter())[what] += 1

    for sent in (SubmitOutcome.from_avro(outcome) for value in read_all(settings, SENT)
                 for outcome in sent_values(value)):  # one outcome, or each of a batch's
        accepted = sent.outcome is SubmitStatus.ACCEPTED
        add((f"route:{sent.route_id}", f"operator:{sent.operator_id}",
             f"tenant:{sent.tenant_id}"), "accepted" if accepted else "failed")
    for value in read_all(settings, DLR):
        report = DeliveryReport.from_avro(value)
        if DeliveryStatus(report.status.value) in NEUTRAL_STATUSES:
            continue  # ACCEPTED (no receipt requested): neither delivered nor failed
        add((f"route:{report.route_id}", f"operator:{report.operator_id}",
             f"tenant:{report.tenant_id}"), report.status.value)
    return totals


def window_totals(settings: Settings) -> Totals:
    """The latest window of every key, as the worker's table changelog holds it."""
    spec = window_spec(settings)
    latest: dict[str, bytes] = {}
    changelog = f"{settings.app_id}-tracking-windows-changelog"
    for key, value in read_records(settings, changelog, topic_prefix=False):
        if key is not None and value is not None:
            latest[json.loads(key)] = value  # faust writes str table keys as JSON
    now_ms = int(time.time() * 1000)
    totals: Totals = {}
    for name, stored in latest.items():
        window = stats(WindowState.from_bytes(stored[12:], spec), now_ms)  # after the position
        counts: Counter[str] = Counter(
            {status.value: n for status, n in window.terminal.items() if n})
        if window.submits_accepted:
            counts["accepted"] = window.submits_accepted
        if window.submits_failed:
            counts["failed"] = window.submits_failed
        if counts:
            totals[name] = counts
    return totals


def wait_for_windows(settings: Settings, *, timeout_s: float = 60.0) -> tuple[Totals, Totals]:
    """Poll until every reference count is in the windows (or the timeout); both, for asserts."""
    deadline = time.monotonic() + timeout_s
    while True:
        reference, windows = reference_totals(settings), window_totals(settings)
        caught_up = all(
            windows.get(key, Counter())[what] >= n
            for key, counts in reference.items() for what, n in counts.items()
        )
        if caught_up or time.monotonic() > deadline:
            return reference, windows
        time.sleep(1.0)
