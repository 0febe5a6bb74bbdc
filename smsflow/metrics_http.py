"""Serve one process's Prometheus registry at ``http://host:port/metrics`` from a daemon thread,
and, when the process has a :class:`~smsflow.probes.Probe`, ``/healthz`` and ``/readyz``.

The sender, the webhooks connector and the Kafka exporter use it (the worker serves its pages
through faust's web server instead, pipeline/web.py). prometheus-client's WSGI app on a
threading WSGI server: answers each scrape from the registry's collectors.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from smsflow.probes import Probe

log = logging.getLogger(__name__)

__all__ = ["MetricsServer", "serve_metrics"]


class MetricsServer(Protocol):
    def shutdown(self) -> None: ...


class _Stopped:
    def shutdown(self) -> None:
        return None


class _Serving:
    def __init__(self, server: Any) -> None:
        self._server = server

    def shutdown(self) -> None:
        """Stop answering and release the port: the WSGI server's own ``shutdown()`` only ends
        its loop and leaves the listening socket open until the process exits."""
        self._server.shutdown()
        self._server.server_close()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes every few seconds would flood the log."""


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _app(registry: CollectorRegistry, probe: Callable[[], Probe] | None) -> Any:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if probe is None or path not in ("/healthz", "/readyz"):
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        answer = probe()
        ok = answer.live if path == "/healthz" else answer.ready
        body = json.dumps({"live": answer.live, "ready": answer.ready,
                           "checks": answer.checks}).encode()
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(body)))])
        return [body]

    return app


def _start(host: str, port: int, app: Any) -> Any:
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, what: str, *, required: bool = False,
    probe: Callable[[], Probe] | None = None,
) -> MetricsServer:
    """Start serving ``registry``; port 0 serves nothing. Call ``shutdown()`` when stopping.

    A port already in use is logged as an error and the process carries on without its page:
    moving messages matters more than being scraped, and Prometheus reports the target down
    (``up == 0``, alert ``SmsflowTargetDown``). With ``required`` (a process whose only job is
    the page) the ``OSError`` is raised instead. With ``probe``, ``/healthz`` and ``/readyz``
    answer 200 or 503 from it (smsflow/probes.py)."""
    if port == 0:
        log.info("%s: metrics page off (port 0)", what)
        return _Stopped()
    try:
        server = _start(host, port, _app(registry, probe))
    except OSError as exc:
        if required:
            raise
        log.error("%s: cannot serve metrics on %s:%d (%s); running without a metrics page",
                  what, host, port, exc)
        return _Stopped()
    log.info("%s: Prometheus metrics at http://%s:%d/metrics%s", what, host, port,
             " (and /healthz, /readyz)" if probe else "")
    return _Serving(server)
