"""LocalStack.start: the workers start before the simulator listens, so a simulator that never
does must not leave them running."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from smsflow.devstack import stack as stack_module
from smsflow.devstack.stack import LocalStack


class _IdleStack(LocalStack):
    def smsflow_argv(self) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(60)"]  # ignores its arguments


def _running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text().lower()


def test_a_failed_start_stops_what_it_started(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    local = _IdleStack(tmp_path, {"PATH": "/usr/bin:/bin"}, tmp_path / "sim.yaml", 1)
    running: dict[str, int] = {}

    def nothing_listens(host: str, port: int, timeout_s: float) -> None:
        running.update(local.pids())
        raise TimeoutError(f"nothing listens on {host}:{port}")

    monkeypatch.setattr(stack_module, "wait_for_port", nothing_listens)
    with pytest.raises(TimeoutError):
        local.start()
    assert sorted(running) == ["smsc-sim", "worker-0"]
    assert local.processes == []
    assert not any(_running(pid) for pid in running.values())
