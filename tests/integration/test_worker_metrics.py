"""``GET /metrics`` on a real worker: limiter, stage, health and guard metrics after traffic."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.producer import SmsProducer, new_request
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.flowrun import make_traffic
from smsflow.devstack.harness import free_port, isolated_settings
from smsflow.devstack.stack import ManagedProcess, stack_env
from smsflow.settings import Settings
from smsflow.topics import CONFIG, SUBMITTED, apply_topics, topic_name
from tests.ops.metric_names import code_families, doc_families
from tests.paths import PLATFORM_CONFIG

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def worker_with_web(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[Settings, int]]:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "metrics")
    apply_topics(settings)
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG), load_yaml(PLATFORM_CONFIG))
    port = free_port()
    env = {**stack_env(settings), "SMSFLOW_WORKER_WEB_PORT": str(port),
           "SMSFLOW_HEALTH_EVALUATE_EVERY_S": "1"}
    process = ManagedProcess(
        "worker-0", [sys.executable, "-m", "smsflow.cli", "worker", "--web", "--loglevel", "warn"],
        tmp_path / "worker.log",
    )
    process.start(env)
    try:
        yield settings, port
    finally:
        process.stop()


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def _families(port: int) -> set[str]:
    """Family names on the live page, as exposed (counters with ``_total``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {f"{family.name}_total" if family.type == "counter" else family.name
            for family in text_string_to_metric_families(text)}


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_page_reports_limiters_stages_and_health(
    worker_with_web: tuple[Settings, int]
) -> None:
    settings, port = worker_with_web
    requests = make_traffic(200, seed=5)
    producer = SmsProducer(settings.kafka_bootstrap, topic_name(settings, SUBMITTED))
    for request in requests:
        producer.submit(request)
    # config/platform.yaml quarantines suspended-co: its message is held (sms.held); a tenant
    # the configuration does not know is refused with a reason.
    producer.submit(new_request("suspended-co", "+447700900123", "held"))
    producer.submit(new_request("nobody", "+447700900123", "refused"))
    assert producer.flush(30) == 0
    parts_expected = 200  # at least one part each

    deadline = time.monotonic() + 120
    samples: Samples = {}
    while time.monotonic() < deadline:
        try:
            samples = _scrape(port)
        except OSError:  # the worker is still starting
            time.sleep(1)
            continue
        released = _value(samples, "smsflow_stage_released_total", stage="throttle") or 0
        healthy = [k for k in samples if k[0] == "smsflow_route_health_state"]
        windows = _value(samples, "smsflow_window_submits", scope="route", id="uk-direct",
                         result="accepted")
        unknown_tenant = _value(samples, "smsflow_rejections_total", stage="router",
                                reason="UNKNOWN_TENANT")
        held = _value(samples, "smsflow_held_parked_total")
        if (released >= len(requests) and healthy and windows is not None and unknown_tenant
                and held):
            break
        time.sleep(1)
    else:
        pytest.fail(f"metrics never showed the traffic: {sorted(k[0] for k in samples)}")

    throttle_parts = sum(v for (name, labels), v in samples.items()
                         if name == "smsflow_limiter_allowed_parts_total"
                         and ("stage", "throttle") in labels and dict(labels)["limiter"]
                         .startswith("route:"))
    assert throttle_parts >= parts_expected
    rates = {dict(labels)["limiter"]: v for (name, labels), v in samples.items()
             if name == "smsflow_limiter_rate_pps" and ("stage", "throttle") in labels}
    assert rates.get("route:uk-direct") == 2000.0, rates  # the route's configured tps
    assert _value(samples, "smsflow_stage_records", stage="throttle", state="queued") == 0
    assert _value(samples, "smsflow_route_health_state", route="uk-direct",
                  state="HEALTHY") == 1.0
    assert _value(samples, "smsflow_commit_guard_stale_acks_refused_total") is not None
    assert (_value(samples, "smsflow_config_version") or -1) >= 0
    assert _value(samples, "smsflow_rejections_total", stage="router",
                  reason="UNKNOWN_TENANT") == 1
    assert _value(samples, "smsflow_held_parked_total") == 1
    # Every message the router passed on is counted once, under its tenant and operator.
    routed = {dict(labels)["tenant"]: v for (name, labels), v in samples.items()
              if name == "smsflow_routed_messages_total"}
    routed_total = sum(v for (name, _), v in samples.items()
                       if name == "smsflow_routed_messages_total")
    routed_parts = sum(v for (name, _), v in samples.items()
                       if name == "smsflow_routed_parts_total")
    assert routed_total == _value(samples, "smsflow_stage_released_total", stage="router")
    assert routed_parts >= routed_total > 0
    assert set(routed) <= {request.tenant_id for request in requests}
    # The route's rolling window is on the page (no sender here: nothing was submitted, so
    # no outcome and no ratio yet).
    assert _value(samples, "smsflow_window_terminal_outcomes", scope="route", id="uk-direct",
                  status="DELIVERED") == 0
    assert _value(samples, "smsflow_window_delivery_ratio", scope="route",
                  id="uk-direct") is None

    # The live page and docs/metrics.md agree both ways.
    live = _families(port)
    assert live == code_families()["worker"]
    assert live <= doc_families()["exported"], sorted(live - doc_families()["exported"])

    # faust's own views (table contents, the partition map) are not served beside /metrics.
    for path in ("/table/", "/router/", "/graph/", "/stats/", "/performance/"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
        assert refused.value.code == 404, path
        refused.value.close()  # an HTTPError holds the response and its socket open

    # The Kubernetes probes: alive, and ready once configured and in its group.
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as page:
            body = json.loads(page.read())
        assert page.status == 200 and body["live"] and body["ready"], (path, body)
        assert body["checks"]["joined"] and body["checks"]["config_loaded"]
        assert body["checks"]["rebalancing_s"] is None
