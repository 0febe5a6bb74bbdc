"""Economy held for off-peak windows on the real broker (issue 4): parked on ``sms.deferred``.

Two windows about half a minute apart, set live through the config topic. Economy sent before
the first waits on ``sms.deferred`` (not in the throttle's memory); the first window releases
what the route's rate allows; what is still queued when it closes is parked again until the
second; a worker SIGKILL between the windows loses nothing. Standard traffic flows throughout.
Times are the scheduler's release times (``throttled_at``), not this machine's speed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.deferral import release_at_of
from smsflow.config.kafka_io import apply_config
from smsflow.config.models import OffPeakWindow, PlatformConfig, Tenant, Tier
from smsflow.config.store import load_yaml
from smsflow.devstack.flowrun import run_flow, warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack, read_messages
from smsflow.devstack.stack import LocalStack
from smsflow.settings import Settings
from smsflow.topics import CONFIG, DEFERRED, topic_name
from tests.integration.test_throttle_limits import _requests, _throttled
from tests.integration.waiting import end_offset, log_shows
from tests.paths import SIM_CONFIG

pytestmark = pytest.mark.slow

PLATFORM = Path(__file__).resolve().parent / "data" / "throttle-limits.yaml"
ROUTE_TPS = 4.0  # the route Economy and Standard share here ("de-other", +4916212…)
ECONOMY = 40  # 10 s of the route: more than the first window (6 s) can release
#: Seconds between the two windows. The crash comes 5 s after the first closes (its leftovers
#: parked again) and at least 15 s before the second opens (the worker is back by then).
GAP_S = 26


@pytest.fixture(scope="module")
def offpeak_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("offpeak"), "offpeak", 2)


@pytest.fixture(scope="module")
def offpeak_stack(offpeak_settings: Settings) -> Iterator[LocalStack]:
    with pytest.MonkeyPatch.context() as env:
        # Info level: the test waits for the worker's "configuration v<N>" line.
        env.setenv("SMSFLOW_STACK_WORKER_LOG_LEVEL", "info")
        with prepared_stack(
            offpeak_settings, platform_config=PLATFORM, sim_config=SIM_CONFIG
        ) as stack:
            warm_up(offpeak_settings, timeout_s=120)
            yield stack


def _with_windows(base: PlatformConfig, windows: list[tuple[int, int]]) -> PlatformConfig:
    def hms(epoch: int) -> str:
        return time.strftime("%H:%M:%S", time.gmtime(epoch))

    routes = tuple(
        route.model_copy(update={"tps": ROUTE_TPS}) if route.id == "de-other" else route
        for route in base.routes
    )
    bulk = Tenant(id="bulk", name="Bulk Sender", tier=Tier.ECONOMY, rate_limit_pps=10_000)
    limits = base.limits.model_copy(update={
        "economy_off_peak": tuple(OffPeakWindow(start=hms(a), end=hms(b)) for a, b in windows),
        "off_peak_utc_offset_minutes": 0,
    })
    return base.model_copy(update={
        "routes": routes, "tenants": (*base.tenants, bulk), "limits": limits,
    })


def _parked(settings: Settings) -> list[tuple[float | None, bytes]]:
    """``(release_at, value)`` of every record on ``sms.deferred``."""
    parked: list[tuple[float | None, bytes]] = []
    for message in read_messages(settings, DEFERRED):
        headers = message.headers() or []
        assert isinstance(headers, list)
        parked.append((release_at_of(headers), message.value() or b""))
    return parked


def test_economy_waits_on_sms_deferred_for_its_windows_and_loses_nothing(
    offpeak_settings: Settings, offpeak_stack: LocalStack
) -> None:
    settings = offpeak_settings
    first_open = int(time.time()) + 25
    second_open = first_open + 6 + GAP_S
    windows = [(first_open, first_open + 6), (second_open, second_open + 35)]
    base = load_yaml(PLATFORM)
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG),
                 _with_windows(base, windows))
    # The worker applies the new version (config topic, live) before any traffic.
    version = end_offset(settings, CONFIG) - 1
    log_shows(offpeak_stack.home / "logs" / "worker-0.log", rf"configuration v{version}:",
              timeout_s=60)

    economy = _requests("bulk", "+4916212", ECONOMY, "night")
    standard = _requests("tenant-b", "+4916212", 10, "day")
    crashed: list[float] = []

    def crash_between_windows(_counts: dict[str, int], _terminal: int) -> None:
        now = time.time()
        if not crashed and windows[0][1] + 5 < now < windows[1][0] - 15:
            crashed.append(now)
            offpeak_stack.crash_and_restart("worker-0")

    sent_at = time.time()
    result = run_flow(settings, [*standard, *economy], timeout_s=240,
                      on_progress=crash_between_windows)
    print(f"\nwindows {windows}, sent at {sent_at:.0f}, crashed at {crashed}; "
          f"{result.summary()}")
    assert sent_at < first_open, "traffic must arrive before the first window"
    assert result.lost == 0, f"{result.lost} messages lost, e.g. {result.missing[:3]}"
    assert crashed, "the drill never crashed the worker between the windows"

    throttled = _throttled(settings, {r.message_id for r in [*economy, *standard]})
    assert len(throttled) == len(economy) + len(standard)
    released = {
        message_id: record.throttled_at.timestamp()
        for message_id, (record, _) in throttled.items()
        if record.throttled_at is not None
    }
    for request in standard:
        assert released[request.message_id] < first_open, "Standard is never held"
    in_window = [0, 0]
    for request in economy:
        at = released[request.message_id]
        which = [i for i, (a, b) in enumerate(windows) if a <= at < b + 0.5]
        assert which, f"Economy released at {at:.1f}, outside the windows {windows}"
        in_window[which[0]] += 1
    print(f"Economy released per window: {in_window}")
    # At ROUTE_TPS the first window cannot take all: the rest was parked again at its end.
    assert in_window[0] > 0 and in_window[1] > 0

    parked = _parked(settings)
    release_times = sorted({round(at) for at, _ in parked if at is not None})
    assert all(at is not None for at, _ in parked), "every parked record has a release time"
    assert len(parked) >= len(economy) + in_window[1]  # arrivals + withdrawals (+ replays)
    assert release_times[0] == windows[0][0] and windows[1][0] in release_times
    offpeak_stack.check_alive()
