"""Finding the process that listens on a port (the benchmarks read the broker's CPU this way)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from smsflow.devstack.stack import _fd_targets, listening_pid


def test_the_listener_is_this_process() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert listening_pid(listener.getsockname()[1]) == os.getpid()


def test_no_listener_is_none() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening
    assert listening_pid(port) is None


def test_an_fd_that_cannot_be_read_is_skipped_not_the_process(tmp_path: Path) -> None:
    """A socket closed between listing a process's fds and reading one raises; before, that
    dropped the whole process, and a busy broker was then not found (no broker CPU)."""
    fd_dir = tmp_path / "fd"
    fd_dir.mkdir()
    (fd_dir / "3").write_text("")  # not a link: readlink raises, as for an fd just closed
    (fd_dir / "4").symlink_to("socket:[12345]")
    assert list(_fd_targets(tmp_path)) == ["socket:[12345]"]
    assert list(_fd_targets(tmp_path / "gone")) == []
