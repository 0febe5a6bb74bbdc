"""The last test session out stops the shared dev service (smsflow/devstack/shared_service.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from smsflow.devstack.shared_service import SharedByTestSessions


class Service:
    def __init__(self, running: bool = False) -> None:
        self.running = running
        self.starts = 0
        self.stops = 0

    def start(self) -> tuple[str, bool]:
        launched = not self.running
        self.running = True
        self.starts += launched
        return "127.0.0.1:9092", launched

    def stop(self) -> None:
        self.running = False
        self.stops += 1


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_session_alone_stops_what_it_started(tmp_path: Path) -> None:
    service = Service()
    session = SharedByTestSessions(tmp_path, pid=_dead_pid())
    assert session.enter(service.start) == "127.0.0.1:9092"
    assert session.leave(service.stop) and not service.running


def test_the_first_session_out_leaves_the_service_to_the_second(tmp_path: Path) -> None:
    service = Service()
    first = SharedByTestSessions(tmp_path, pid=_dead_pid())
    second = SharedByTestSessions(tmp_path)  # this process: alive
    first.enter(service.start)
    second.enter(service.start)
    assert not first.leave(service.stop) and service.running
    assert second.leave(service.stop) and not service.running
    assert (service.starts, service.stops) == (1, 1)


def test_the_launcher_finishing_last_stops_it_too(tmp_path: Path) -> None:
    service = Service()
    launcher = SharedByTestSessions(tmp_path)
    adopter = SharedByTestSessions(tmp_path, pid=_dead_pid())
    launcher.enter(service.start)
    adopter.enter(service.start)
    assert not adopter.leave(service.stop)  # the launcher (alive) still uses it
    assert launcher.leave(service.stop) and not service.running


def test_a_service_started_by_hand_is_never_stopped(tmp_path: Path) -> None:
    service = Service(running=True)
    session = SharedByTestSessions(tmp_path, pid=_dead_pid())
    session.enter(service.start)
    assert not session.leave(service.stop) and service.running


def test_a_killed_session_does_not_keep_the_service_alive(tmp_path: Path) -> None:
    service = Service()
    killed = SharedByTestSessions(tmp_path, pid=_dead_pid())
    survivor = SharedByTestSessions(tmp_path, pid=_dead_pid())
    killed.enter(service.start)  # and never leaves
    survivor.enter(service.start)
    assert survivor.leave(service.stop) and not service.running
