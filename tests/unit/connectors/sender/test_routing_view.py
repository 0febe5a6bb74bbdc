"""The sender's routing view without Kafka: records folded into a view, and the failover
decision taken from it (connectors/sender/routing_view.py). The thread that reads the topics
is tested against the real broker in tests/integration/test_sender_routing_view.py."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.producer import new_request
from connectors.sender.routing_view import RoutingInputs, View, failed_over, failover_decision
from schemas.models import ConfigRecord, RoutedMessage, RouteHealth, TextEncoding
from smsflow.config.models import PlatformConfig
from smsflow.config.store import to_records
from smsflow.domain import route_engine
from smsflow.domain.route_state import RouteState
from tests.unit.domain.test_route_engine import config, route

NOW = 1_800_000_000.0
UK = "+447401234567"  # gb-ee
# Cheapest first: the router picks uk-cheap; its fallbacks are uk-mid, then uk-dear.
ROUTES = [
    route("uk-cheap", smsc="smsc-lon", cost=0.01),
    route("uk-mid", smsc="smsc-fra", cost=0.02),
    route("uk-dear", smsc="smsc-nyc", cost=0.03),
]


def _records(platform: PlatformConfig) -> dict[str, bytes]:
    stamp = datetime.fromtimestamp(NOW, UTC)
    return {key: record.to_avro() for key, record in to_records(platform, stamp).items()}


def _health(route_id: str, state: RouteState, score: float = 0.1) -> bytes:
    return RouteHealth(route_id=route_id, state=state, score=score, window_s=300,
                       updated_at=datetime.fromtimestamp(NOW, UTC)).to_avro()


def _on_cheap() -> RoutedMessage:
    return RoutedMessage(
        request=new_request("std", UK, "failover"), destination=UK, route_id="uk-cheap",
        smsc_id="smsc-lon", operator_id="gb-ee", country="GB", encoding=TextEncoding.GSM7, parts=1,
        routed_at=datetime.fromtimestamp(NOW, UTC))


def _read(platform: PlatformConfig, start: PlatformConfig | None = None
          ) -> tuple[RoutingInputs, View]:
    """A view started from ``start`` (the sender's start-up config) that read ``platform``."""
    first = start or platform
    view = View(first, route_engine.build_snapshot(route_engine.build_catalogue(first), {}, NOW))
    inputs = RoutingInputs()
    for key, value in _records(platform).items():
        inputs.apply_config(key, value)
    return inputs, inputs.next_view(view, NOW)


def _route_of(decision: route_engine.Decision | route_engine.RouteRejection) -> str:
    assert isinstance(decision, route_engine.Decision), decision
    return decision.route_id


def test_failover_skips_a_route_reported_down() -> None:
    inputs, view = _read(config(ROUTES))
    assert _route_of(failover_decision(view.engine, _on_cheap(), NOW)) == "uk-mid"

    inputs.apply_health("uk-mid", _health("uk-mid", RouteState.DOWN, 0.0))
    view = inputs.next_view(view, NOW + 1)

    assert _route_of(failover_decision(view.engine, _on_cheap(), NOW + 1)) == "uk-dear"


def test_failover_skips_routes_already_failed_and_runs_out() -> None:
    _, view = _read(config(ROUTES))
    twice = _on_cheap().model_copy(update={"route_id": "uk-mid", "failed_routes": ["uk-cheap"]})
    assert _route_of(failover_decision(view.engine, twice, NOW)) == "uk-dear"

    thrice = twice.model_copy(update={"route_id": "uk-dear",
                                      "failed_routes": ["uk-cheap", "uk-mid"]})
    assert isinstance(failover_decision(view.engine, thrice, NOW), route_engine.RouteRejection)


def test_a_route_disabled_since_start_is_no_failover_target() -> None:
    disabled = [ROUTES[0], {**ROUTES[1], "enabled": False}, ROUTES[2]]
    _, view = _read(config(disabled), start=config(ROUTES))

    assert view.version == 1
    assert _route_of(failover_decision(view.engine, _on_cheap(), NOW)) == "uk-dear"


def test_health_forgotten_by_a_tombstone() -> None:
    inputs, view = _read(config(ROUTES))
    inputs.apply_health("uk-mid", _health("uk-mid", RouteState.DOWN, 0.0))
    view = inputs.next_view(view, NOW)
    assert _route_of(failover_decision(view.engine, _on_cheap(), NOW)) == "uk-dear"

    inputs.apply_health("uk-mid", None)
    assert inputs.health_changed
    view = inputs.next_view(view, NOW)
    assert "uk-mid" not in view.engine.reports
    # Back on its baseline once the engine's recovery hold is over (hysteresis, as routers).
    later = NOW + 3600
    view = inputs.next_view(view, later)
    assert _route_of(failover_decision(view.engine, _on_cheap(), later)) == "uk-mid"


def test_an_smsc_added_and_a_route_removed_by_tombstone() -> None:
    inputs, view = _read(config(ROUTES))
    grown = config(ROUTES)
    grown = grown.model_copy(update={"smscs": (*grown.smscs, grown.smscs[0].model_copy(
        update={"id": "smsc-new"}))})
    for key, value in _records(grown).items():
        inputs.apply_config(key, value)
    inputs.apply_config("route/uk-mid", None)
    view = inputs.next_view(view, NOW)

    assert view.version == 2
    assert "smsc-new" in {smsc.id for smsc in view.config.smscs}
    assert {r.id for r in view.config.routes} == {"uk-cheap", "uk-dear"}
    assert _route_of(failover_decision(view.engine, _on_cheap(), NOW)) == "uk-dear"


def test_an_inconsistent_configuration_keeps_the_previous_one_but_health_applies() -> None:
    inputs, view = _read(config(ROUTES))
    # A route on an SMSC the topic does not hold (a half-applied change): no assembly.
    orphan = ConfigRecord.model_validate({
        **ConfigRecord.from_avro(_records(config(ROUTES))["route/uk-mid"]).model_dump(),
        "document": '{"id": "uk-orphan", "smsc": "smsc-nowhere", "operators": ["gb-ee"], '
                    '"tps": 10, "cost": 0.001}',
    })
    inputs.apply_config("route/uk-orphan", orphan.to_avro())
    inputs.apply_health("uk-mid", _health("uk-mid", RouteState.DOWN, 0.0))
    after = inputs.next_view(view, NOW)

    assert after.version == view.version
    assert after.config == view.config
    assert _route_of(failover_decision(after.engine, _on_cheap(), NOW)) == "uk-dear"


def test_undecodable_records_are_skipped() -> None:
    inputs, view = _read(config(ROUTES))
    inputs.apply_config("route/uk-mid", b"not avro")
    inputs.apply_health("uk-mid", b"\xc3\x01garbage")

    assert not inputs.config_changed and not inputs.health_changed
    assert inputs.next_view(view, NOW).config == view.config


def test_the_failed_over_record_names_the_new_route_and_the_one_that_failed() -> None:
    _, view = _read(config(ROUTES))
    later = datetime.fromtimestamp(NOW + 30, UTC)
    throttled = _on_cheap().model_copy(update={"throttled_at": datetime.fromtimestamp(NOW, UTC)})

    again = failed_over(view.engine, throttled, later)

    assert isinstance(again, RoutedMessage)
    assert (again.route_id, again.smsc_id, again.failed_routes) == (
        "uk-mid", "smsc-fra", ["uk-cheap"])
    # Routed again now, and throttled again on its new route.
    assert (again.routed_at, again.throttled_at) == (later, None)
    assert again.request == throttled.request

    exhausted = again.model_copy(update={"route_id": "uk-dear",
                                         "failed_routes": ["uk-cheap", "uk-mid"]})
    assert isinstance(failed_over(view.engine, exhausted, later), route_engine.RouteRejection)
