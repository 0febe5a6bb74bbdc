"""The worker's probe commands (run inside its container) really answer for the worker's pages:
exit 0 when /healthz (liveness) or /readyz (readiness) answers 200 on SMSFLOW_WORKER_WEB_PORT,
non-zero on a 503 or when nothing listens. Checked for each worker Deployment (one per role)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.k8s.tooling import ROOT, WORKER_ROLES, named, objects

#: What the stand-in answers: alive, not ready.
STATUS = {"/healthz": 200, "/readyz": 503}


def _probe_command(deployment: str, probe: str = "livenessProbe") -> list[str]:
    worker = named(objects("overlays/dev"), "Deployment", deployment)
    command: list[str] = worker["spec"]["template"]["spec"]["containers"][0][
        probe]["exec"]["command"]
    assert command[0] == "python3"
    return [sys.executable, *command[1:]]


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = STATUS.get(self.path, 404)
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"smsflow_up 1\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(deployment: str, port: int, probe: str = "livenessProbe") -> int:
    env = {**os.environ, "SMSFLOW_WORKER_WEB_PORT": str(port)}
    return subprocess.run(_probe_command(deployment, probe), env=env, capture_output=True,
                          timeout=30, check=False).returncode


@pytest.mark.parametrize("deployment", WORKER_ROLES)
def test_the_probe_passes_when_the_page_answers(deployment: str, page_port: int) -> None:
    assert _run(deployment, page_port, "livenessProbe") == 0
    assert _run(deployment, page_port, "startupProbe") == 0


@pytest.mark.parametrize("deployment", WORKER_ROLES)
def test_a_503_fails_the_probe(deployment: str, page_port: int) -> None:
    assert _run(deployment, page_port, "readinessProbe") != 0


@pytest.mark.parametrize("deployment", WORKER_ROLES)
def test_the_probe_fails_when_nothing_listens(deployment: str) -> None:
    assert _run(deployment, _free_port()) != 0


@pytest.mark.parametrize("deployment", WORKER_ROLES)
def test_the_probed_paths_are_pages_the_worker_serves(deployment: str) -> None:
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert path in " ".join(_probe_command(deployment, probe))
        assert f'.page("{path}")' in (ROOT / "pipeline/web.py").read_text()
