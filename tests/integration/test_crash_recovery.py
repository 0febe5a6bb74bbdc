"""Crash drills: SIGKILL a component mid-stream, restart it, and lose nothing.

The faust worker holds the delivery tables (faust-streaming issue #596 reports skipped events
after table recovery); the sender holds SMPP windows and uncommitted offsets. Either may die at
any moment; every message must still reach a terminal state.

The worker may also die between a delivery report stored on ``sms.dlr`` and its done marker
(issue 13): the test-only fault ``SMSFLOW_TEST_DIE_AT_REPORT`` (pipeline/faults.py) makes it
SIGKILL itself exactly there, and every message must still have exactly one terminal record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.faults import ENV_DIE_AT_REPORT
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack
from smsflow.devstack.stack import LocalStack
from smsflow.settings import Settings, WorkerRole
from tests.integration.windows import wait_for_windows
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow

MESSAGES = 1500
CRASH_AFTER_TERMINAL = 300
#: The report at which the worker kills itself in the report/marker window (the warm-up's
#: probe is report 1).
DIE_AT_REPORT = 300


@pytest.fixture
def crash_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("crash"), "crash")


@pytest.fixture
def roles() -> tuple[WorkerRole, ...]:
    """The workers' roles (pipeline/roles.py); a test's parametrization may override it."""
    return ("all",)


@pytest.fixture
def crash_stack(crash_settings: Settings, roles: tuple[WorkerRole, ...]) -> Iterator[LocalStack]:
    with prepared_stack(
        crash_settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG,
        worker_roles=roles,
    ) as stack:
        warm_up(crash_settings, timeout_s=120)
        yield stack


@pytest.mark.parametrize(
    ("roles", "component"),
    [
        (("all",), "worker-0"),
        (("all",), "sender"),
        # The workers split by role: each half killed on its own.
        (("routing", "delivery"), "worker-routing-0"),
        (("routing", "delivery"), "worker-delivery-1"),
    ],
    ids=["worker", "sender", "routing-worker", "delivery-worker"],
)
def test_sigkill_mid_stream_loses_nothing(
    component: str, crash_settings: Settings, crash_stack: LocalStack
) -> None:
    crashed: list[int] = []

    def crash_once(counts: dict[str, int], terminal: int) -> None:
        if not crashed and terminal >= CRASH_AFTER_TERMINAL:
            crashed.append(terminal)
            crash_stack.crash_and_restart(component)

    requests = make_traffic(MESSAGES, seed=hash(component) % 1000)
    result = run_flow(crash_settings, requests, timeout_s=240, on_progress=crash_once)

    print(f"\n{component}: crashed after {crashed} terminal; summary {result.summary()}")
    assert crashed, "the drill never crashed the component (traffic finished too early?)"
    assert crashed[0] < MESSAGES, "crash happened after everything was already done"
    assert result.lost == 0, f"{result.lost} messages lost, e.g. {result.missing[:3]}"
    crash_stack.check_alive()

    # The windows live in the killed worker's tables: recovered from their changelogs, they
    # must hold every event (at-least-once: a batch replayed after the crash counts twice).
    reference, windows = wait_for_windows(crash_settings)
    skipped = {
        (key, what): n - windows.get(key, Counter())[what]
        for key, counts in reference.items() for what, n in counts.items()
        if windows.get(key, Counter())[what] < n
    }
    excess = sum(
        max(0, n - reference.get(key, Counter())[what])
        for key, counts in windows.items() for what, n in counts.items()
    )
    print(f"{component}: window counts over the raw events by {excess} (replayed batches)")
    assert not skipped, f"events missing from the recovered windows: {skipped}"


def test_sigkill_between_report_and_done_marker_reports_once(
    crash_settings: Settings, tmp_path: Path
) -> None:
    fired = tmp_path / "died-at-report"
    stack = prepared_stack(crash_settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG)
    # Every process gets it; only the worker reads it, and a restarted one finds ``fired``.
    stack.env[ENV_DIE_AT_REPORT] = f"{DIE_AT_REPORT}:{fired}"
    restarted: list[int] = []

    def restart_once(_counts: dict[str, int], terminal: int) -> None:
        if not restarted and fired.exists():
            restarted.append(terminal)
            stack.crash_and_restart("worker-0")  # already dead: starts it again

    with stack:
        warm_up(crash_settings, timeout_s=120)
        requests = make_traffic(MESSAGES, seed=13)
        result = run_flow(crash_settings, requests, timeout_s=240, on_progress=restart_once)
        stack.check_alive()

    died_on = fired.read_text() if fired.exists() else "-"
    print(f"\nworker died at report {DIE_AT_REPORT} ({died_on}), restarted after {restarted}"
          f" terminal; summary {result.summary()}")
    assert restarted, "the worker never reached the fault (traffic finished too early?)"
    assert result.lost == 0, f"{result.lost} messages lost, e.g. {result.missing[:3]}"
    assert result.duplicates == 0, (
        f"{result.duplicates} terminal records beyond the first per message: a report stored "
        f"before the crash was sent again"
    )
