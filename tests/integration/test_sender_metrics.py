"""The sender's /metrics page over HTTP, with a real broker and the SMSC simulator: submit
latency and command_status per SMSC after traffic, bind up while bound, and bind down plus a
``down`` transition when the SMSC goes away (what the SmppBindDown alert reads). The same port
answers the Kubernetes probes: ready while in the group with a bind up, not ready without."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from connectors.producer import new_request
from connectors.sender.probe import probe
from connectors.sender.service import SenderService
from schemas.models import RoutedMessage, TextEncoding
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import isolated_settings
from smsflow.metrics_http import serve_metrics
from smsflow.topics import THROTTLED, apply_topics, topic_name
from tests.integration.simulators import platform_simulator, pointed_at
from tests.ops.metric_names import code_families, doc_families
from tests.paths import PLATFORM_CONFIG

MESSAGES = 20

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def _probe(port: int, path: str) -> tuple[int, bool, bool]:
    """(HTTP status, live, ready) of a probe page."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as page:
            status, body = page.status, json.loads(page.read())
    except urllib.error.HTTPError as refused:
        status, body = refused.code, json.loads(refused.read())
    return status, body["live"], body["ready"]


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_sender_metrics_follow_traffic_and_bind_state(kafka_bootstrap: str,
                                                      tmp_path: Path) -> None:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "sender-metrics", partitions=1)
    apply_topics(settings)
    sim = platform_simulator(
        seed=5, profiles={"default": {"submit_latency_ms": 2, "receipt_delay_ms": 10}})
    config = pointed_at(load_yaml(PLATFORM_CONFIG), sim.port)
    uk = next(smsc for smsc in config.smscs if smsc.id == "smsc-uk")
    service = SenderService(settings, config,
                            group_id=f"sender-metrics-{uuid.uuid4().hex[:8]}")
    service.drain_timeout_s = 1.0
    port = _free_port()
    server = serve_metrics(service.metrics.registry, "127.0.0.1", port, "test sender",
                           probe=lambda: probe(service))
    runner = threading.Thread(target=service.run, name="sender-under-test", daemon=True)
    runner.start()
    try:
        throttled = topic_name(settings, THROTTLED)
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
        for n in range(MESSAGES):
            now = datetime.now(UTC)
            routed = RoutedMessage(
                request=new_request("acme-bank", f"+4474013{n:05d}", f"metrics {n}", now=now),
                destination=f"+4474013{n:05d}", route_id="uk-direct", smsc_id="smsc-uk",
                operator_id="op", country="GB", encoding=TextEncoding.GSM7, parts=1,
                routed_at=now)
            producer.produce(throttled, key=b"uk-direct", value=routed.to_avro(throttled))
        assert producer.flush(10) == 0

        ok = "smsflow_smpp_submit_responses_total"
        _wait_for(lambda: _value(_scrape(port), ok, smsc="smsc-uk", status="ESME_ROK")
                  == MESSAGES, 60, "every submit_sm_resp counted")
        samples = _scrape(port)
        assert _value(samples, "smsflow_smpp_submit_latency_seconds_count",
                      smsc="smsc-uk") == MESSAGES
        assert (_value(samples, "smsflow_smpp_submit_latency_seconds_bucket",
                       smsc="smsc-uk", le="10.0") == MESSAGES)
        assert _value(samples, "smsflow_sender_parts_accepted_total") == MESSAGES
        binds = [f"smsc-uk#{n}" for n in range(uk.binds)]
        for bind in binds:
            assert _value(samples, "smsflow_smpp_bind_up", smsc="smsc-uk", bind=bind) == 1
            assert _value(samples, "smsflow_smpp_window_size", smsc="smsc-uk",
                          bind=bind) == uk.window
            assert _value(samples, "smsflow_smpp_bind_transitions_total", smsc="smsc-uk",
                          bind=bind, direction="up") == 1
        assert _value(samples, "smsflow_sender_queued_parts", smsc="smsc-uk") == 0
        # The live page and docs/metrics.md agree both ways.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            live = {f"{family.name}_total" if family.type == "counter" else family.name
                    for family in text_string_to_metric_families(page.read().decode())}
        assert live == code_families()["sender"]
        assert live <= doc_families()["exported"]
        assert _probe(port, "/healthz") == (200, True, True)
        assert _probe(port, "/readyz") == (200, True, True)

        sim.stop()  # every SMSC connection drops
        _wait_for(lambda: all(
            _value(_scrape(port), "smsflow_smpp_bind_up", smsc="smsc-uk", bind=bind) == 0
            for bind in binds), 30, "the binds reported down")
        samples = _scrape(port)
        for bind in binds:
            down = _value(samples, "smsflow_smpp_bind_transitions_total", smsc="smsc-uk",
                          bind=bind, direction="down")
            assert down is not None and down >= 1
        _wait_for(lambda: _probe(port, "/readyz") == (503, True, False), 30,
                  "not ready without a bind")
        assert _probe(port, "/healthz") == (200, True, False), "alive: restarting cures nothing"
    finally:
        service.stop()
        runner.join(30)
        server.shutdown()
        sim.stop()
