"""Scaling the worker group while traffic flows: rebalances must lose nothing.

faust 0.15.3 skips, strands or commits unprocessed records across rebalances and table
recovery (pipeline/faust_patches/guarded_consumer.py corrects it); this drill makes rebalances
happen mid-stream on purpose. Traffic is paced over about a minute while
a second and a third worker join, one worker is stopped cleanly and one is killed. Every
message must still get its report, and the rolling windows (spread over the workers' tables
and moved between them) must hold every event.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack
from smsflow.devstack.stack import LocalStack
from tests.integration.windows import wait_for_windows
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow

MESSAGES = 3_000
RATE_PER_S = 50.0  # about a minute of traffic
#: Group changes at these seconds after traffic starts (a worker needs ~5-10 s to join).
PLAN = ((5.0, "join"), (20.0, "join"), (35.0, "leave worker-1"), (45.0, "kill worker-2"))


def _change_group(stack: LocalStack, steps: list[str], stop: threading.Event) -> None:
    started = time.monotonic()
    for at_s, action in PLAN:
        if stop.wait(max(0.0, started + at_s - time.monotonic())):
            return
        if action == "join":
            steps.append(f"{at_s:.0f}s join {stack.add_worker()}")
        elif action.startswith("leave"):
            name = action.split()[1]
            stack.stop_process(name)
            steps.append(f"{at_s:.0f}s stopped {name}")
        else:
            name = action.split()[1]
            stack.crash_and_restart(name)
            steps.append(f"{at_s:.0f}s killed and restarted {name}")


@pytest.mark.timeout(600)  # ~100 s on a quiet machine; the traffic alone is a minute
def test_workers_joining_and_leaving_mid_stream_lose_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "scale")
    steps: list[str] = []
    stop = threading.Event()
    with prepared_stack(settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG) as stack:
        warm_up(settings, timeout_s=120)
        changer = threading.Thread(target=_change_group, args=(stack, steps, stop))
        changer.start()
        try:
            result = run_flow(settings, make_traffic(MESSAGES, seed=31), timeout_s=360,
                              rate_per_s=RATE_PER_S)
        finally:
            stop.set()
            changer.join()
        stack.check_alive()
        reference, windows = wait_for_windows(settings, timeout_s=90)

    print(f"\nscale drill: {steps}; {result.summary()}")
    assert len(steps) == len(PLAN), f"traffic ended before the group changes: {steps}"
    assert result.lost == 0, f"{result.lost} lost, e.g. {result.missing[:3]}"
    missing = {
        (key, what): n - windows.get(key, Counter())[what]
        for key, counts in reference.items() for what, n in counts.items()
        if windows.get(key, Counter())[what] < n
    }
    assert not missing, f"events missing from the windows: {missing}"
