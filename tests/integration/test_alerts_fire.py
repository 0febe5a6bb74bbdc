"""A real Prometheus scrapes a running stack and evaluates ops/prometheus/rules.yml.

Worker (``--web``), sender and ``smsflow kafka-exporter`` run as processes against the real
broker; two SMSC simulators stand in for the operators: one serves smsc-uk and smsc-de, with
the UK profile delivering only half of its messages; the other serves smsc-us alone.
Prometheus (Debian's ``prometheus`` package) scrapes every second. Then:

* the delivery-rate alerts fire for ``uk-direct`` and not for ``de-direct``;
* stopping smsc-us's simulator fires ``SmppBindDown`` for smsc-us's bind only.

The rule expressions are the real ones; only their ``for:`` durations are shortened to 5 s in
the copy Prometheus loads, so the test waits seconds instead of minutes (the ``for:`` timing
itself is covered by the promtool unit tests, ops/prometheus/tests/).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.producer import SmsProducer, new_request
from schemas.models import RouteHealth
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import free_port, isolated_settings, read_records
from smsflow.devstack.stack import stack_env, wait_for_port
from smsflow.domain.route_state import RouteState
from smsflow.settings import Settings
from smsflow.topics import CONFIG, ROUTE_HEALTH, SUBMITTED, apply_topics, topic_name
from tests.integration.prometheus_stack import ProcessSet
from tests.paths import PLATFORM_CONFIG

pytestmark = pytest.mark.slow

PER_ROUTE = 120  # the alerts need 50 outcomes in a route's window
UK_DELIVERY_RATIO = 0.5


def _sim_config(path: Path, accounts: list[tuple[str, str]]) -> Path:
    path.write_text(yaml.safe_dump({
        "seed": 11,
        "accounts": [{"system_id": system_id, "password": password}
                     for system_id, password in accounts],
        "profiles": {
            "default": {"submit_latency_ms": 1, "receipt_delay_ms": 50, "delivery_ratio": 1.0},
            "uk": {"prefixes": ["44"], "submit_latency_ms": 1, "receipt_delay_ms": 50,
                   "delivery_ratio": UK_DELIVERY_RATIO},
        },
    }))
    return path


def _alerts(port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as page:
        alerts: list[dict[str, Any]] = json.load(page)["data"]["alerts"]
    return alerts


def _firing(port: int, name: str) -> list[dict[str, str]]:
    return [alert["labels"] for alert in _alerts(port)
            if alert["labels"]["alertname"] == name and alert["state"] == "firing"]


def _wait_for_firing(port: int, name: str, timeout_s: float, **labels: str
                     ) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            firing = _firing(port, name)
        except (urllib.error.URLError, OSError):
            firing = []
        if any(all(alert.get(k) == v for k, v in labels.items()) for alert in firing):
            return firing
        time.sleep(1)
    raise AssertionError(f"{name} {labels} never fired; alerts: {_alerts(port)}")


BIND_GRACE_S = 3


def _wait_for_route_state(settings: Settings, route_id: str, state: RouteState, *,
                          after: datetime, timeout_s: float = 30) -> datetime:
    """When ``route_id`` was first published in ``state`` on sms.route-health after ``after``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for key, value in read_records(settings, ROUTE_HEALTH):
            if key != route_id.encode() or value is None:
                continue
            record = RouteHealth.from_avro(value)
            if record.state is state and record.updated_at >= after:
                return record.updated_at
        time.sleep(0.5)
    raise AssertionError(f"{route_id} never became {state.value} after {after}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ProcessSet]:
    running = ProcessSet(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_delivery_and_bind_alerts_fire_for_the_broken_operator_only(
    kafka_bootstrap: str, tmp_path: Path, stack: ProcessSet
) -> None:
    settings: Settings = isolated_settings(kafka_bootstrap, tmp_path, "alerts", partitions=1)
    apply_topics(settings)
    main_sim, us_sim = free_port(), free_port()
    config = load_yaml(PLATFORM_CONFIG)
    config = config.model_copy(update={"smscs": tuple(
        smsc.model_copy(update={"port": us_sim if smsc.id == "smsc-us" else main_sim})
        for smsc in config.smscs)})
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG), config)

    ports = {job: free_port() for job in
             ("smsflow-worker", "smsflow-sender", "smsflow-kafka-exporter")}
    env = {**stack_env(settings), "SMSFLOW_HEALTH_EVALUATE_EVERY_S": "1",
           # A bind may be gone this long before its routes go DOWN (production: 10 s).
           "SMSFLOW_BIND_DOWN_GRACE_S": str(BIND_GRACE_S),
           "SMSFLOW_WORKER_WEB_PORT": str(ports["smsflow-worker"]),
           "SMSFLOW_SENDER_METRICS_PORT": str(ports["smsflow-sender"])}
    cli = [sys.executable, "-m", "smsflow.cli"]
    stack.start("sim-main", [*cli, "smsc-sim", "--port", str(main_sim), "--config", str(
        _sim_config(tmp_path / "sim-main.yaml",
                    [("smsc-uk", "uk-pass"), ("smsc-de", "de-pass")]))], env)
    stack.start("sim-us", [*cli, "smsc-sim", "--port", str(us_sim), "--config", str(
        _sim_config(tmp_path / "sim-us.yaml", [("smsc-us", "us-pass")]))], env)
    wait_for_port("127.0.0.1", main_sim, 20)
    wait_for_port("127.0.0.1", us_sim, 20)
    stack.start("worker", [*cli, "worker", "--web", "--loglevel", "warn"], env)
    stack.start("sender", [*cli, "sender", "--log-level", "warning"], env)
    stack.start("kafka-exporter", [*cli, "kafka-exporter", "--port",
                                   str(ports["smsflow-kafka-exporter"]), "--group",
                                   settings.app_id, "--group", f"{settings.app_id}-sender"], env)
    prometheus_port = free_port()
    stack.start_prometheus(ports, prometheus_port, env)
    try:
        wait_for_port("127.0.0.1", prometheus_port, 30)
        producer = SmsProducer(settings.kafka_bootstrap, topic_name(settings, SUBMITTED))
        for n in range(PER_ROUTE):
            producer.submit(new_request("shopfast", f"+447700900{n:03d}", f"uk {n}"))
            producer.submit(new_request("shopfast", f"+4915112{n:06d}", f"de {n}"))
        assert producer.flush(30) == 0

        critical = _wait_for_firing(prometheus_port, "DeliveryRateCritical", 240,
                                    id="uk-direct")
        low = _wait_for_firing(prometheus_port, "DeliveryRateLow", 30, id="uk-direct")
        assert {alert["id"] for alert in critical + low} == {"uk-direct"}
        # de-direct delivered everything: its ratio is on the page, and no alert names it.
        with urllib.request.urlopen(
            f"http://127.0.0.1:{prometheus_port}/api/v1/query?query="
            "smsflow_window_delivery_ratio%7Bid%3D%22de-direct%22%7D", timeout=5) as page:
            (de_ratio,) = json.load(page)["data"]["result"]
        assert float(de_ratio["value"][1]) == 1.0

        assert not _firing(prometheus_port, "SmppBindDown")
        stopped = datetime.now(UTC)
        stack.processes["sim-us"].stop()
        # Bind state feeds route health: with no traffic to judge, only the lost bind can
        # take us-direct DOWN, and it does within seconds (sms.smsc-binds -> the worker).
        down_at = _wait_for_route_state(settings, "us-direct", RouteState.DOWN, after=stopped)
        took_s = (down_at - stopped).total_seconds()
        assert BIND_GRACE_S <= took_s < BIND_GRACE_S + 15, down_at - stopped
        down = _wait_for_firing(prometheus_port, "SmppBindDown", 60, smsc="smsc-us")
        assert {alert["smsc"] for alert in down} == {"smsc-us"}
        assert {alert["bind"] for alert in down} == {"smsc-us#0"}
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{stack.logs()}") from failure
