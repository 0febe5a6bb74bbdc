"""The sender's routing view follows ``sms.config`` and ``sms.route-health`` on the real broker.

Failover (``SenderService._fail_over``) decides with this view: a route reported ``DOWN`` or
disabled since the sender started is no failover target, and an SMSC added since is known
without a read on the consuming thread (connectors/sender/routing_view.py). The second test
runs the sender itself against the SMPP simulator: a message on a route whose SMSC refuses the
bind fails over past the fallback that route health says is ``DOWN``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

import connectors.sender.service as sender_service
from connectors.producer import new_request
from connectors.sender.routing_view import RoutingView, failover_decision
from schemas.models import RoutedMessage, RouteHealth, TextEncoding
from smsflow.config.kafka_io import apply_config
from smsflow.config.models import PlatformConfig, Route
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import isolated_settings, read_messages
from smsflow.domain import route_engine
from smsflow.domain.route_state import RouteState
from smsflow.settings import Settings
from smsflow.topics import CONFIG, ROUTE_HEALTH, ROUTED, THROTTLED, apply_topics, topic_name
from tests.integration.simulators import platform_simulator, pointed_at
from tests.integration.waiting import wait_until
from tests.paths import PLATFORM_CONFIG

pytestmark = pytest.mark.slow

#: platform.yaml plus uk-cheap-broken, whose SMSC refuses our password (test_failover.py).
FAILOVER_CONFIG = Path(__file__).parent / "data" / "failover-platform.yaml"

UK = "+447401300001"  # gb-ee


def _with_uk_routes(config: PlatformConfig, *, dear_enabled: bool = True) -> PlatformConfig:
    """platform.yaml with two more routes to gb-ee, so a message on the cheapest one has two
    fallbacks: uk-mid (smsc-de), then uk-direct (smsc-uk, 0.030)."""
    cheap = Route(id="uk-cheap", smsc="smsc-us", operators=("gb-ee",), tps=100, cost=0.010)
    mid = Route(id="uk-mid", smsc="smsc-de", operators=("gb-ee",), tps=100, cost=0.020)
    routes = [r if r.id != "uk-direct" else r.model_copy(update={"enabled": dear_enabled})
              for r in config.routes]
    return config.model_copy(update={"routes": (*routes, cheap, mid)})


def _on_cheap(route_id: str = "uk-cheap", smsc_id: str = "smsc-us") -> RoutedMessage:
    now = datetime.now(UTC)
    return RoutedMessage(
        request=new_request("acme-bank", UK, "failover", now=now), destination=UK,
        route_id=route_id, smsc_id=smsc_id, operator_id="gb-ee", country="GB",
        encoding=TextEncoding.GSM7, parts=1, routed_at=now)


def _produce(settings: Settings, topic: str, key: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(10) == 0


def _down(route_id: str) -> RouteHealth:
    return RouteHealth(route_id=route_id, state=RouteState.DOWN, score=0.0, window_s=300,
                       updated_at=datetime.now(UTC))


def _failover_target(view: RoutingView) -> str | None:
    decision = failover_decision(view.current.engine, _on_cheap(), datetime.now(UTC).timestamp())
    return decision.route_id if isinstance(decision, route_engine.Decision) else None


def test_failover_follows_route_health_and_configuration_changes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "sender-routing-view")
    apply_topics(settings)
    config_topic, health_topic = topic_name(settings, CONFIG), topic_name(settings, ROUTE_HEALTH)
    start = _with_uk_routes(load_yaml(PLATFORM_CONFIG))
    apply_config(settings.kafka_bootstrap, config_topic, start)
    # Route health as the worker's tracking writes it: uk-mid is DOWN.
    _produce(settings, health_topic, "uk-mid", _down("uk-mid").to_avro(health_topic))

    view = RoutingView(settings.kafka_bootstrap, config_topic, health_topic, start)
    # Before it has read anything the view is the start-up configuration with no health:
    # what the sender used to fail over with for its whole life.
    assert _failover_target(view) == "uk-mid"
    view.start()
    try:
        assert view.caught_up.wait(60), "the view never read both topics to their end"
        assert _failover_target(view) == "uk-direct"  # uk-mid is DOWN

        # Disabled since the sender started, and a new SMSC: both reach the view.
        changed = _with_uk_routes(load_yaml(PLATFORM_CONFIG), dear_enabled=False)
        new_smsc = changed.smscs[0].model_copy(update={"id": "smsc-new"})
        changed = changed.model_copy(update={"smscs": (*changed.smscs, new_smsc)})
        apply_config(settings.kafka_bootstrap, config_topic, changed)
        # Both changes, whichever batch of the view's reads brought each: uk-mid is DOWN and
        # uk-direct disabled, so no route is left to fail over to.
        wait_until(lambda: "smsc-new" in {s.id for s in view.current.config.smscs}
                   and _failover_target(view) is None,
                   timeout_s=30, what="the new SMSC and the disabled route in the view")
        assert view.current.version >= 1
        assert view.failures == 0
    finally:
        view.stop()


def test_the_view_catches_up_when_the_last_offset_holds_no_record(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A partition's high watermark can sit past its last readable record: a transaction's
    commit marker, or a tombstone compaction removed. The view must still count as caught up
    (it stops at the partition's end, not at an offset it will never see)."""
    settings = isolated_settings(kafka_bootstrap, tmp_path, "sender-view-gap")
    apply_topics(settings)
    config_topic, health_topic = topic_name(settings, CONFIG), topic_name(settings, ROUTE_HEALTH)
    start = load_yaml(PLATFORM_CONFIG)
    apply_config(settings.kafka_bootstrap, config_topic, start)
    # The last offset of this route-health partition is a commit marker, never delivered.
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap,
                         "transactional.id": f"view-gap-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(health_topic, key=b"uk-direct", value=_down("uk-direct").to_avro(health_topic))
    producer.commit_transaction(30)

    view = RoutingView(settings.kafka_bootstrap, config_topic, health_topic, start)
    view.start()
    try:
        assert view.caught_up.wait(30), "the view waited for an offset that holds no record"
        assert view.current.engine.reports["uk-direct"].state is RouteState.DOWN
    finally:
        view.stop()


@contextmanager
def _sender_on_a_broken_route(
    kafka_bootstrap: str, tmp_path: Path, down: tuple[str, ...]
) -> Iterator[tuple[Settings, sender_service.SenderService, RoutedMessage]]:
    """A sender whose message is on uk-cheap-broken (the SMSC refuses our password), with
    route health saying ``down``; yields once the message is on sms.throttled. Fallbacks for
    gb-ee: uk-mid (smsc-de, 0.020), then uk-direct (smsc-uk, 0.030)."""
    settings = isolated_settings(kafka_bootstrap, tmp_path, "sender-failover-view", partitions=1)
    apply_topics(settings)
    config_topic, health_topic = topic_name(settings, CONFIG), topic_name(settings, ROUTE_HEALTH)
    sim = platform_simulator(seed=3, profiles={"default": {"submit_latency_ms": 2}})
    base = pointed_at(load_yaml(FAILOVER_CONFIG), sim.port)
    mid = Route(id="uk-mid", smsc="smsc-de", operators=("gb-ee",), tps=100, cost=0.020)
    config = base.model_copy(update={"routes": (*base.routes, mid)})
    apply_config(settings.kafka_bootstrap, config_topic, config)
    for route_id in down:
        _produce(settings, health_topic, route_id, _down(route_id).to_avro(health_topic))

    service = sender_service.SenderService(
        settings, config, group_id=f"sender-failover-view-{uuid.uuid4().hex[:8]}")
    service.drain_timeout_s = 1.0
    runner = threading.Thread(target=service.run, name="sender-under-test", daemon=True)
    runner.start()
    try:
        # Failover may come 1 s after the start: by then the view must have read the health.
        assert service.routing_view.caught_up.wait(60), "the routing view never caught up"
        message = _on_cheap("uk-cheap-broken", "smsc-broken")
        throttled = topic_name(settings, THROTTLED)
        _produce(settings, throttled, message.route_id, message.to_avro(throttled))
        yield settings, service, message
        assert runner.is_alive()
    finally:
        service.stop()
        runner.join(30)
        sim.stop()


def _rerouted(settings: Settings, message: RoutedMessage) -> list[RoutedMessage]:
    found = [RoutedMessage.from_avro(m.value()) for m in read_messages(settings, ROUTED)]
    return [r for r in found if r.request.message_id == message.request.message_id]


def test_the_sender_fails_over_past_a_route_reported_down(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender_service, "FAILOVER_AFTER_S", 1.0)  # not the 10 s of production
    with _sender_on_a_broken_route(kafka_bootstrap, tmp_path, down=("uk-mid",)) as (
            settings, service, message):
        wait_until(lambda: bool(_rerouted(settings, message)), timeout_s=60,
                   what="the message failed over to sms.routed")
        (again,) = _rerouted(settings, message)
        # With the start-up view (no health) this was uk-mid, a route the routers avoid.
        assert (again.route_id, again.smsc_id) == ("uk-direct", "smsc-uk")
        assert again.failed_routes == ["uk-cheap-broken"]
        assert service.stats["failovers"] == 1
        assert service.stats["routes_exhausted"] == 0


def test_no_route_left_is_counted_once_and_the_message_waits(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender_service, "FAILOVER_AFTER_S", 1.0)
    with _sender_on_a_broken_route(kafka_bootstrap, tmp_path, down=("uk-mid", "uk-direct")) as (
            settings, service, message):
        wait_until(lambda: service.stats["routes_exhausted"] == 1, timeout_s=60,
                   what="failover finding no route left")
        time.sleep(2.0)  # four more bind waits, each asking failover again
        assert service.stats["routes_exhausted"] == 1
        assert service.stats["failovers"] == 0
        assert not _rerouted(settings, message)
