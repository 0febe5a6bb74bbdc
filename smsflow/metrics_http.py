"""Serve one process's Prometheus registry at ``http://host:port/metrics`` from a daemon thread.

The sender, the webhooks connector and the Kafka exporter use it (the worker serves its page
through faust's web server instead, pipeline/web.py). prometheus-client's own WSGI server:
one thread, answers each scrape from the registry's collectors.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, start_http_server

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


def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, what: str, *, required: bool = False
) -> MetricsServer:
    """Start serving ``registry``; port 0 serves nothing. Call ``shutdown()`` when stopping.

    A port already in use is logged as an error and the process carries on without its page:
    moving messages matters more than being scraped, and Prometheus reports the target down
    (``up == 0``, alert ``SmsflowTargetDown``). With ``required`` (a process whose only job is
    the page) the ``OSError`` is raised instead."""
    if port == 0:
        log.info("%s: metrics page off (port 0)", what)
        return _Stopped()
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if required:
            raise
        log.error("%s: cannot serve metrics on %s:%d (%s); running without a metrics page",
                  what, host, port, exc)
        return _Stopped()
    log.info("%s: Prometheus metrics at http://%s:%d/metrics", what, host, port)
    return _Serving(server)
