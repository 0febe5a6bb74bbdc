"""The closed loop: a degraded SMSC lowers its route's health, the router moves traffic away,
and after recovery (and the half-open probe) it moves traffic back.

Real components throughout: the SMSC behind the cheap route is an in-process simulator whose
delivery ratio the test turns down and up again; the dear route's SMSC is the stack's own
simulator; receipts flow through the sender, the correlator, the window and health agents, the
compacted ``sms.route-health`` topic, and back into the router's decisions. Clocks are shrunk
(10 s windows, 20 samples to judge, 8 s probe) so the loop closes within a minute. It runs with
one worker of every stage and with the workers split by role (pipeline/roles.py), where the
loop crosses from the delivery process to the routing process through Kafka alone.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.producer import new_request
from connectors.smsc_sim import SimulatorThread
from pipeline.roles import DELIVERY_GROUP_SUFFIX
from schemas.models import DeliveryReport, RouteHealth, SubmitRequest
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.flowrun import run_flow, warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack, read_all
from smsflow.devstack.stack import LocalStack
from smsflow.settings import Settings, WorkerRole
from smsflow.topics import CONFIG, DLR, ROUTE_HEALTH, SENT, TRACKING_DELTAS, topic_name
from tests.integration.waiting import log_shows, log_size, worker_consumed
from tests.paths import SIM_CONFIG

pytestmark = pytest.mark.slow

PLATFORM = Path(__file__).parent / "data" / "health-loop-platform.yaml"
SHRUNK_CLOCKS = {
    "SMSFLOW_TRACKING_BUCKET_S": "1",
    "SMSFLOW_TRACKING_BUCKETS": "10",
    "SMSFLOW_HEALTH_MIN_SAMPLES": "20",
    "SMSFLOW_HEALTH_RECOVER_DWELL_S": "3",
    "SMSFLOW_HEALTH_PROBE_AFTER_S": "8",
    "SMSFLOW_HEALTH_EVALUATE_EVERY_S": "1",
}
FLAKY_SIM = {
    "accounts": [{"system_id": "smsc-flaky", "password": "fl-pass"}],
    "profiles": {"default": {"delivery_ratio": 1.0, "receipt_delay_ms": 50,
                             "submit_latency_ms": 2}},
    "seed": 7,
}


@pytest.fixture
def loop_settings(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    for name, value in SHRUNK_CLOCKS.items():
        monkeypatch.setenv(name, value)  # the stack's processes inherit the environment
    # Info level: the test waits for the router's "routing now sees route ..." lines.
    monkeypatch.setenv("SMSFLOW_STACK_WORKER_LOG_LEVEL", "info")
    return isolated_settings(kafka_bootstrap, tmp_path, "health-loop")


@pytest.fixture
def flaky_smsc() -> Iterator[SimulatorThread]:
    with SimulatorThread(FLAKY_SIM) as sim:
        yield sim


@pytest.fixture(params=[("all",), ("routing", "delivery")], ids=["all", "split"])
def roles(request: pytest.FixtureRequest) -> tuple[WorkerRole, ...]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def loop_stack(loop_settings: Settings, flaky_smsc: SimulatorThread,
               roles: tuple[WorkerRole, ...]) -> Iterator[LocalStack]:
    stack = prepared_stack(loop_settings, platform_config=PLATFORM, sim_config=SIM_CONFIG,
                           worker_roles=roles)
    # prepared_stack points every SMSC at the stack's simulator; the cheap route's SMSC is ours.
    config = load_yaml(PLATFORM)
    smscs = tuple(
        smsc.model_copy(update={"port": flaky_smsc.port if smsc.id == "smsc-flaky"
                                else stack.sim_port})
        for smsc in config.smscs
    )
    apply_config(loop_settings.kafka_bootstrap, topic_name(loop_settings, CONFIG),
                 config.model_copy(update={"smscs": smscs}))
    with stack:
        warm_up(loop_settings, timeout_s=120)
        yield stack


def _ee_traffic(count: int, label: str) -> list[SubmitRequest]:
    return [new_request("shopfast", f"+4474012{n % 10000:05d}", f"{label} {n}")
            for n in range(count)]


def _routes_of(settings: Settings, requests: list[SubmitRequest]) -> Counter[str]:
    ids = {r.message_id for r in requests}
    return Counter(report.route_id for report in map(DeliveryReport.from_avro,
                                                     read_all(settings, DLR))
                   if report.message_id in ids)


def _latest_health(settings: Settings, route_id: str) -> RouteHealth | None:
    latest = None
    for value in read_all(settings, ROUTE_HEALTH):
        record = RouteHealth.from_avro(value)
        if record.route_id == route_id:
            latest = record
    return latest


def _send_until(settings: Settings, stack: LocalStack, label: str, route_id: str,
                state: str, *, timeout_s: float) -> tuple[RouteHealth, Counter[str]]:
    """Keep traffic flowing (waves of 20) until ``route_id``'s published state is ``state``."""
    deadline = time.monotonic() + timeout_s
    sent: Counter[str] = Counter()
    wave = 0
    while True:
        requests = _ee_traffic(20, f"{label}-{wave}")
        result = run_flow(settings, requests, timeout_s=60)
        assert result.lost == 0
        sent += _routes_of(settings, requests)
        stack.check_alive()
        health = _latest_health(settings, route_id)
        if health is not None and health.state.value == state:
            return health, sent
        if time.monotonic() > deadline:
            pytest.fail(f"{route_id} never became {state}: last {health}, traffic {sent}")
        wave += 1
        time.sleep(0.5)


def test_degraded_route_loses_traffic_and_wins_it_back_after_recovery(
    loop_settings: Settings, loop_stack: LocalStack, flaky_smsc: SimulatorThread,
    roles: tuple[WorkerRole, ...],
) -> None:
    # Healthy: the cheap route carries EE traffic.
    healthy = _ee_traffic(40, "healthy")
    assert run_flow(loop_settings, healthy, timeout_s=60).lost == 0
    assert _routes_of(loop_settings, healthy) == Counter({"uk-flaky": 40})

    # The SMSC starts failing four deliveries in five: the route is judged DEGRADED...
    router = "worker-0" if roles == ("all",) else "worker-routing-0"
    worker_log = loop_stack.home / "logs" / f"{router}.log"
    mark = log_size(worker_log)
    flaky_smsc.set_profile("default", delivery_ratio=0.2)
    degraded, _ = _send_until(loop_settings, loop_stack, "failing", "uk-flaky", "DEGRADED",
                              timeout_s=90)
    assert degraded.delivery_rate is not None and degraded.delivery_rate < 0.9
    assert degraded.score < 0.9
    # ...the health record reaches the router (it follows the compacted topic)...
    log_shows(worker_log, "routing now sees route uk-flaky as DEGRADED", after=mark,
              timeout_s=30)
    # ...and the router sends EE traffic to the dear, healthy route.
    away = _ee_traffic(40, "away")
    assert run_flow(loop_settings, away, timeout_s=60).lost == 0
    assert _routes_of(loop_settings, away) == Counter({"uk-direct": 40})

    # The SMSC recovers. With no traffic to judge, the route probes back to HEALTHY once the
    # bad samples have aged out of its window, and traffic returns to the cheap route.
    mark = log_size(worker_log)
    flaky_smsc.set_profile("default", delivery_ratio=1.0)
    recovered, _ = _send_until(loop_settings, loop_stack, "recovering", "uk-flaky", "HEALTHY",
                               timeout_s=120)
    log_shows(worker_log, "routing now sees route uk-flaky as HEALTHY", after=mark,
              timeout_s=30)
    back = _ee_traffic(40, "back")
    assert run_flow(loop_settings, back, timeout_s=60).lost == 0
    routes = _routes_of(loop_settings, back)
    assert routes["uk-flaky"] == 40, routes
    # And it stays healthy under the returned traffic (judged good this time): once the
    # worker has counted and judged all of it, whatever it published is on the topic.
    worker_consumed(loop_settings, [SENT, DLR], timeout_s=60,
                    group=f"{loop_settings.app_id}-tracking")  # the tracking feed counted it
    windows_group = loop_settings.app_id + ("" if roles == ("all",) else DELIVERY_GROUP_SUFFIX)
    worker_consumed(loop_settings, [TRACKING_DELTAS], timeout_s=60,  # and the windows merged it
                    group=windows_group)
    latest = _latest_health(loop_settings, "uk-flaky")
    assert latest is not None and latest.state.value == "HEALTHY", (recovered, latest)
