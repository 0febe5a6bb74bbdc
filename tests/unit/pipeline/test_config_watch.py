"""The configuration watcher's engine updates (no broker: the snapshot is set directly)."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline import config_watch
from pipeline.config_watch import ConfigSnapshot, ConfigWatcher
from smsflow.config.models import PlatformConfig
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


def test_prewarm_builds_the_catalogue_of_the_topic_s_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The number tables the first snapshot needs are built before faust starts."""
    built: list[PlatformConfig] = []
    config = load_yaml(PLATFORM_CONFIG)
    watcher = ConfigWatcher("127.0.0.1:1", "sms.config")  # builds an empty catalogue
    groups: list[str | None] = []

    def read(_bootstrap: object, _topic: str, *, group_id: str | None = None) -> PlatformConfig:
        groups.append(group_id)
        return config

    monkeypatch.setattr(config_watch, "read_config", read)
    monkeypatch.setattr(route_engine, "build_catalogue", built.append)
    watcher.prewarm("smsflow-app").join(timeout=60)
    assert built == [config]
    assert groups == ["smsflow-app"]  # a group the worker's ACLs allow it to describe


def test_prewarm_that_cannot_read_the_topic_only_leaves_the_tables_cold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreachable(_bootstrap: object, _topic: str, *, group_id: str | None = None
                    ) -> PlatformConfig:
        raise TimeoutError("no broker")

    monkeypatch.setattr(config_watch, "read_config", unreachable)
    thread = ConfigWatcher("127.0.0.1:1", "sms.config").prewarm("smsflow-app")
    thread.join(timeout=60)
    assert not thread.is_alive()
