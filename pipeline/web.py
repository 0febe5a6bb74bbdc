"""The worker's HTTP pages: ``GET /metrics`` (Prometheus), ``/healthz`` and ``/readyz`` (the
Kubernetes probes, smsflow/probes.py), served when the worker runs with ``--web`` on
``SMSFLOW_WORKER_WEB_PORT`` (address ``SMSFLOW_METRICS_HOST``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from faust.web import Request, Response, View

from pipeline import rejections
from pipeline.app import Worker
from pipeline.metrics import WorkerCollector, render
from smsflow.domain.tracking.windows import WindowState, WindowStats, stats
from smsflow.probes import Probe, worker_probe

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
        changelogs=worker.changelogs,
    )

    @worker.app.page("/metrics")
    async def metrics(view: View, request: Request) -> Response:
        return view.bytes(render(collector), content_type=_CONTENT_TYPE)

    rebalance = _RebalanceClock()

    @worker.app.timer(interval=1.0)
    async def watch_rebalances() -> None:
        """faust says whether a rebalance runs, not since when: note when one started."""
        rebalance.observe(worker.app.rebalancing, time.monotonic())

    def probe() -> Probe:
        app, now = worker.app, time.monotonic()
        rebalance.observe(app.rebalancing, now)  # a rebalance begun since the last tick counts
        return worker_probe(
            now=now, rebalancing_since=rebalance.since,
            config_loaded=config_watcher.snapshot.version >= 0,
            joined=app.rebalancing_count > 0,  # a rebalance started once: in the group
        )

    @worker.app.page("/healthz")
    async def healthz(view: View, request: Request) -> Response:
        answer = probe()
        return _probe_response(view, answer, answer.live)

    @worker.app.page("/readyz")
    async def readyz(view: View, request: Request) -> Response:
        answer = probe()
        return _probe_response(view, answer, answer.ready)


class _RebalanceClock:
    def __init__(self) -> None:
        self.since: float | None = None

    def observe(self, rebalancing: bool, now: float) -> None:
        if not rebalancing:
            self.since = None
        elif self.since is None:
            self.since = now


def _probe_response(view: View, answer: Probe, ok: bool) -> Response:
    return view.json({"live": answer.live, "ready": answer.ready, "checks": answer.checks},
                     status=200 if ok else 503)
