"""The configuration watcher's engine updates (no broker: the snapshot is set directly)."""

from __future__ import annotations

import asyncio
import time

from pipeline.config_watch import ConfigSnapshot, ConfigWatcher
from smsflow.config.store import load_yaml
from smsflow.domain import route_engine
from smsflow.domain.route_engine import HealthReport, RouteRequest
from smsflow.domain.route_state import RouteState
from tests.paths import PLATFORM_CONFIG

PLATFORM = PLATFORM_CONFIG
UK_MOBILE = "+447400123456"


def _watcher() -> ConfigWatcher:
    config = load_yaml(PLATFORM)
    watcher = ConfigWatcher("127.0.0.1:1", "unused")
    engine = route_engine.build_snapshot(route_engine.build_catalogue(config), {}, time.time())
    watcher.snapshot = ConfigSnapshot(config, 0, engine)
    return watcher


def _route_of(watcher: ConfigWatcher) -> str:
    """The route a UK number of a standard tenant takes, or the reason code of the refusal."""
    decision = route_engine.decide(watcher.snapshot.engine,
                                   RouteRequest("shopfast", UK_MOBILE), time.time())
    if isinstance(decision, route_engine.RouteRejection):
        return decision.reason_code
    return decision.route.route_id


def test_health_reports_of_a_batch_apply_together_and_survive_a_concurrent_refresh() -> None:
    watcher = _watcher()
    assert _route_of(watcher) == "uk-direct"
    down = HealthReport(RouteState.DOWN, 0.0, None, time.time())

    async def scenario() -> None:
        # A refresh racing the health update must not overwrite it with an older snapshot.
        await asyncio.gather(watcher.apply_health({"uk-direct": down}), watcher.refresh(),
                             watcher.refresh())

    asyncio.run(scenario())
    assert watcher.snapshot.engine.reports["uk-direct"] == down
    assert _route_of(watcher) == "NO_ROUTE"  # uk-direct is the only standard-tier UK route
