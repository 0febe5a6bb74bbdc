"""The worker's HTTP page: ``GET /metrics`` (Prometheus), served when the worker runs with
``--web`` on ``SMSFLOW_WORKER_WEB_PORT`` (address ``SMSFLOW_METRICS_HOST``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from faust.web import Request, Response, View

from pipeline import rejections
from pipeline.app import Worker
from pipeline.metrics import WorkerCollector, render
from smsflow.domain.tracking.windows import WindowState, WindowStats, stats

__all__ = ["register"]

# The classic text format (what generate_latest writes, and what every Prometheus 2.x reads),
# without a "; charset=" parameter: aiohttp refuses one inside a content type.
_CONTENT_TYPE = "text/plain; version=0.0.4"


def register(
    worker: Worker,
    *,
    delivery_counts: Callable[[], dict[str, int]],
    owned_windows: Callable[[], list[tuple[str, WindowState]]],
) -> None:
    config_watcher = worker.config_watcher

    def route_health() -> dict[str, tuple[str, float]]:
        reports = config_watcher.snapshot.engine.reports
        return {route: (report.state.value, report.score) for route, report in reports.items()}

    def windows() -> list[tuple[str, WindowStats]]:
        """The owned rolling windows, aged to now (a quiet window's old buckets roll out)."""
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        return [(key, stats(window, now_ms)) for key, window in owned_windows()]

    collector = WorkerCollector(
        stages=lambda: tuple(worker.stages),
        delivery_counts=delivery_counts,
        route_health=route_health,
        config_version=lambda: config_watcher.snapshot.version,
        windows=windows,
        rejections=lambda: dict(rejections.counts),
    )

    @worker.app.page("/metrics")
    async def metrics(view: View, request: Request) -> Response:
        return view.bytes(render(collector), content_type=_CONTENT_TYPE)
