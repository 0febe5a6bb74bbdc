"""faust's per-event sensor calls, reduced to the one figure faust itself reads.

faust calls ``app.sensors`` (a :class:`~faust.sensors.base.SensorDelegate`) for every message
and every stream event: ``on_message_in`` when the conductor hands a message on,
``on_stream_event_in``/``_out`` around every event an agent takes, ``on_message_out`` on its
ack, ``on_table_get``/``_set``/``_del`` on every table access. The delegate fans each call out
to its sensors (here only faust's :class:`~faust.sensors.monitor.Monitor`), building a dict per
event for the state it passes between ``_in`` and ``_out``; the monitor keeps counters, deques
of timings and per-stream lookups. That was about 4.5% of the worker's CPU (py-spy, an
8,000-message burst, ~7 events per message), for statistics nothing reads: the worker serves
its own Prometheus metrics, and faust's web views that show the monitor's figures are off
(``web_stats_enabled=False`` and friends in :func:`pipeline.app.build_app`).

One figure is read: faust's "stream is not processing" check
(``AIOKafkaConsumerThread.verify_event_path``) compares ``Monitor.stream_inbound_time[tp]``
with the partition's fetch position, to log a stalled stream. :class:`LeanSensors` keeps that
(one dict write per event) and passes every other sensor call (commits, rebalances, sends,
topic-buffer-full: rare events) to the sensors as faust does. A sensor added besides the
monitor would therefore miss the per-event calls: the worker adds none.

Installed by :func:`install` right after the app is built, before any stream, table or
consumer exists (they bind the delegate's methods when they are created).
"""

from __future__ import annotations

from time import monotonic
from typing import Any

import faust
from faust.sensors import Monitor, SensorDelegate
from faust.types import TP, EventT, Message, SensorT, StreamT
from faust.types.tables import CollectionT

from pipeline.faust_patches.upstream import Upstream

__all__ = ["UPSTREAM", "LeanSensors", "install"]

UPSTREAM: tuple[Upstream, ...] = (
    Upstream("faust.sensors.base:SensorDelegate", "fcc8c9a7e2aa7a73",
             "subclassed: the per-event methods overridden, the rest kept"),
    Upstream("faust.sensors.monitor:Monitor.on_stream_event_in", "df6d2e5f6397ce44",
             "sets stream_inbound_time[tp] = monotonic(), the figure LeanSensors keeps"),
    Upstream("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.verify_event_path",
             "b983e7735f647cb3", "reads app.monitor.stream_inbound_time (a stalled stream)"),
    Upstream("faust.app.base:App.__init__", "698e2bf236c67369",
             "creates self.sensors = SensorDelegate(self); replaced before first use"),
)


class LeanSensors(SensorDelegate):
    """The app's sensor delegate without per-event statistics (see the module docstring)."""

    def __init__(self, app: faust.App) -> None:
        super().__init__(app)
        self._inbound: dict[TP, float] | None = None

    def add(self, sensor: SensorT) -> None:
        super().add(sensor)
        if isinstance(sensor, Monitor):
            self._inbound = sensor.stream_inbound_time

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT[Any],
                           event: EventT[Any]) -> dict[Any, Any] | None:
        inbound = self._inbound
        if inbound is not None:
            inbound[tp] = monotonic()
        return None

    def on_stream_event_out(self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any],
                            state: dict[Any, Any] | None = None) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        pass

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        pass

    def on_table_del(self, table: CollectionT, key: Any) -> None:
        pass


def install(app: faust.App) -> None:
    """Replace the app's sensor delegate; call before streams, tables or the consumer exist."""
    if list(app.sensors):  # a fresh app has none until it starts
        raise RuntimeError("lean_sensors.install must run before the app starts")
    app.sensors = LeanSensors(app)
