"""The lean sensor delegate: per-event calls cost nothing but the stalled-stream figure, the
rare calls still reach faust's monitor, and it replaces the delegate of a real app."""

from __future__ import annotations

from typing import Any

import faust
import pytest
from faust.sensors import Monitor
from faust.types import TP

from pipeline.faust_patches.lean_sensors import LeanSensors, install


@pytest.fixture
def app(fresh_app: faust.App) -> faust.App:
    return fresh_app


def test_install_replaces_the_delegate_and_the_monitor_joins_it(app: faust.App) -> None:
    install(app)
    assert isinstance(app.sensors, LeanSensors)
    app.sensors.add(app.monitor)  # as faust's App.on_init_dependencies does
    assert list(app.sensors) == [app.monitor]


def test_install_refuses_a_delegate_that_already_has_sensors(app: faust.App) -> None:
    app.sensors.add(app.monitor)
    with pytest.raises(RuntimeError, match="before the app starts"):
        install(app)


def test_an_event_in_sets_only_the_inbound_time_the_stall_check_reads(app: faust.App) -> None:
    install(app)
    app.sensors.add(app.monitor)
    monitor: Monitor = app.monitor
    tp = TP("sms.submitted", 3)
    event: Any = object()
    state = app.sensors.on_stream_event_in(tp, 41, object(), event)  # type: ignore[arg-type]
    assert state is None
    assert tp in monitor.stream_inbound_time
    app.sensors.on_stream_event_out(tp, 41, object(), event, state)  # type: ignore[arg-type]
    app.sensors.on_message_in(tp, 41, object())  # type: ignore[arg-type]
    app.sensors.on_message_out(tp, 41, object())  # type: ignore[arg-type]
    app.sensors.on_table_set(object(), b"k", b"v")  # type: ignore[arg-type]
    assert monitor.events_total == 0 and monitor.messages_received_total == 0


def test_commit_calls_still_reach_the_monitor(app: faust.App) -> None:
    install(app)
    app.sensors.add(app.monitor)
    state = app.sensors.on_commit_initiated(object())  # type: ignore[arg-type]
    app.sensors.on_commit_completed(object(), state)  # type: ignore[arg-type]
    assert len(app.monitor.commit_latency) == 1
