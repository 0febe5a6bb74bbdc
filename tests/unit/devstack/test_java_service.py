"""The local-service life cycle (smsflow.devstack.java_service) with a stand-in server: Python's
``http.server`` plays the JVM, so start, adopt, status, stop and the start-up failures run in a
second, without Java or Maven."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from smsflow.devstack.java_service import (
    COMPLETE_MARKER,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    JavaServiceError,
    LocalJavaService,
    libs_complete,
    port_open,
    publish_complete,
    status_command,
)


class StandInError(JavaServiceError):
    pass


class StandIn(LocalJavaService):
    """``python -m http.server`` under ``<home>/standin``; "installed" is a marker file."""

    label = "the stand-in"
    version = "1.0"
    error = StandInError
    port_advice = "Choose another port"
    poll_s = 0.05

    def __init__(self, home: Path, port: int, *, crash: bool = False) -> None:
        super().__init__(home, port, home / "install")
        self.crash = crash
        self.downloads = 0

    @property
    def state_dir(self) -> Path:
        return self.home / "standin"

    @property
    def installed_dir(self) -> Path:
        return self.install_dir / "app"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "standin.pid"

    @property
    def console_log(self) -> Path:
        return self.state_dir / "logs" / "standin.out"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running_address(self) -> str | None:
        if self.pid() is None:
            return None
        return f"127.0.0.1:{(self.state_dir / 'standin.port').read_text()}"

    def _prepare(self) -> None:
        super()._prepare()
        (self.state_dir / "standin.port").write_text(str(self.port))

    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    def command(self) -> list[str]:
        if self.crash:
            return [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"]
        return [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                "--directory", str(self.state_dir)]

    def _download(self) -> None:
        self.downloads += 1
        partial = self.install_dir / "app.partial"
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "server.jar").write_bytes(b"")
        publish_complete(partial, self.installed_dir, ["server.jar"])

    def _owns_cmdline(self, args: Sequence[str]) -> bool:
        return "http.server" in args and str(self.state_dir) in args

    def _serves(self, address: str, timeout_s: float) -> bool:
        host, _, port = address.rpartition(":")
        return port_open(host, int(port), timeout_s)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandIn]:
    service = StandIn(tmp_path / "home", _free_port())
    yield service
    service.stop(5)


def test_start_installs_once_launches_and_waits_until_it_serves(standin: StandIn) -> None:
    assert standin.start(20) == standin.address
    assert standin.launched and standin.is_running()
    assert standin.downloads == 1 and libs_complete(standin.installed_dir)
    assert not (standin.install_dir / "app.partial").exists()
    assert (standin.installed_dir / COMPLETE_MARKER).read_text() == "server.jar\n"

    second = StandIn(standin.home, standin.port)
    assert second.start(20) == standin.address
    assert not second.launched, "a running server is adopted, not launched again"
    assert second.downloads == 0 and second.pid() == standin.pid()


def test_status_and_stop(standin: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    standin.start(20)
    pid = standin.pid()
    assert status_command("status", lambda: StandIn(standin.home, standin.port)) == EXIT_OK
    assert f"running: pid {pid}, {standin.address}, the stand-in 1.0" in capsys.readouterr().out

    assert StandIn(standin.home, standin.port).stop(5) is True
    assert standin.pid() is None and not standin.pid_file.exists()
    deadline = time.monotonic() + 5.0  # the launcher reaps it; give a loaded machine a moment
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "stopped, and reaped by the object that launched it"
    assert status_command("status", lambda: standin) == EXIT_NOT_RUNNING
    assert standin.stop(5) is False, "stop is idempotent"


def test_kill_is_a_crash_and_a_restart_launches_again(standin: StandIn) -> None:
    standin.start(20)
    pid = standin.pid()
    assert StandIn(standin.home, standin.port).kill() == pid
    assert standin.pid() is None, "the pid file may stay; its dead pid is not trusted"
    assert standin.kill() is None, "nothing left to kill"
    assert standin.start(20) == standin.address
    assert standin.pid() not in (None, pid)


def test_a_server_tied_to_its_starter_has_a_guard_that_stop_reaps(standin: StandIn) -> None:
    """The guard itself (stopping the server once this process is gone) is tested in
    tests/integration/test_stack_lifeline.py; here: it is started, and reaped on stop."""
    standin.exit_with_starter = True
    standin.start(20)
    guard = standin._guard
    assert guard is not None and guard.poll() is None
    assert standin.stop(5) is True
    assert guard.returncode is not None, "ended and reaped with its server"
    assert standin._guard is None


def test_adopting_on_other_ports_is_refused(standin: StandIn) -> None:
    standin.start(20)
    elsewhere = StandIn(standin.home, _free_port())
    with pytest.raises(StandInError, match=r"already runs .* stop it first to change ports"):
        elsewhere.start(5)


def test_a_port_held_by_a_stranger_is_refused_before_launching(tmp_path: Path) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        service = StandIn(tmp_path, stranger.getsockname()[1])
        with pytest.raises(StandInError, match=r"already in use by another process\. Choose"):
            service.start(5)
    assert not service.launched and service.downloads == 0


def test_a_server_that_dies_at_start_up_is_an_error_with_its_log(tmp_path: Path) -> None:
    service = StandIn(tmp_path, _free_port(), crash=True)
    with pytest.raises(StandInError, match=r"(?s)exited during start-up.*bad config"):
        service.start(20)
    assert not service.pid_file.exists()


def test_a_pid_file_naming_another_process_is_not_trusted(tmp_path: Path) -> None:
    service = StandIn(tmp_path, _free_port())
    service.state_dir.mkdir(parents=True)
    service.pid_file.write_text(f"{os.getpid()}\n")  # alive, but it is pytest
    assert service.pid() is None
    assert service.stop(1) is False and not service.pid_file.exists()
