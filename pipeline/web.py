"""The worker's HTTP page: ``GET /metrics`` (Prometheus), served when the worker runs with
``--web`` on ``SMSFLOW_WORKER_WEB_PORT`` (127.0.0.1)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from faust.web import Request, Response, View

from pipeline import rejections
from pipeline.agents import delivery, tracking
from pipeline.app import app
from pipeline.metrics import WorkerCollector, render
from pipeline.runtime import config_watcher
from pipeline.scheduling import ScheduledStage
from smsflow.domain.tracking.windows import WindowStats, stats

# The classic text format (what generate_latest writes, and what every Prometheus 2.x reads),
# without a "; charset=" parameter: aiohttp refuses one inside a content type.
_CONTENT_TYPE = "text/plain; version=0.0.4"


def _stages() -> Iterator[ScheduledStage[Any]]:
    """Every scheduled stage the agent modules created (router, throttle)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("pipeline.agents.") and module is not None:
            for value in vars(module).values():
                if isinstance(value, ScheduledStage):
                    yield value


def _route_health() -> dict[str, tuple[str, float]]:
    reports = config_watcher.snapshot.engine.reports
    return {route: (report.state.value, report.score) for route, report in reports.items()}


def _windows() -> list[tuple[str, WindowStats]]:
    """The owned rolling windows, aged to now (a quiet window's old buckets roll out)."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    return [(key, stats(window, now_ms)) for key, window in tracking.owned_windows()]


collector = WorkerCollector(
    stages=_stages,
    delivery_counts=lambda: dict(delivery.counts),
    route_health=_route_health,
    config_version=lambda: config_watcher.snapshot.version,
    windows=_windows,
    rejections=lambda: dict(rejections.counts),
)


@app.page("/metrics")
async def metrics(view: View, request: Request) -> Response:
    return view.bytes(render(collector), content_type=_CONTENT_TYPE)
