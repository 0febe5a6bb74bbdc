"""Test sessions that share one local Java service (the repo's broker, its schema registry):
the last session out stops it, and only when a test session started it.

Why: a pytest session reuses the broker that already runs and stops the one it launched when
it ends. With two sessions at once (two terminals, a drill loop beside ``make test``) the
first to finish stopped the broker under the other: every process of the second one's
stacks logged "Connection refused" and its flows stalled (session 26 lost a drill run so).

Each session leaves a file named after its pid in ``<state dir>/test-sessions/`` while it
runs; ``launched-by-tests`` marks a service a test session started. A session that ends
stops the service only if that marker is there and no other live session has a file (a
killed session's file does not count: its pid is gone). A service started by hand
(``smsflow broker start``) has no marker and is never stopped by tests. Start and stop
happen under the directory's lock, so a session that starts while another stops waits and
then starts a fresh service instead of adopting one about to go.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from smsflow.devstack.java_service import locked, pid_exists

__all__ = ["SharedByTestSessions"]

T = TypeVar("T")
LAUNCHED = "launched-by-tests"


class SharedByTestSessions:
    """The sessions using the service whose state directory is ``state_dir``."""

    def __init__(self, state_dir: Path, pid: int | None = None) -> None:
        self._dir = state_dir / "test-sessions"
        self._pid = os.getpid() if pid is None else pid

    def enter(self, start: Callable[[], tuple[T, bool]]) -> T:
        """Run ``start`` (returns its result and whether it launched the service) and record
        this session as a user."""
        with locked(self._dir / ".lock"):
            result, launched = start()
            (self._dir / str(self._pid)).touch()
            if launched:
                (self._dir / LAUNCHED).touch()
            return result

    def leave(self, stop: Callable[[], object]) -> bool:
        """Forget this session; run ``stop`` if a test session launched the service and no
        other live session uses it. True when it stopped it."""
        with locked(self._dir / ".lock"):
            (self._dir / str(self._pid)).unlink(missing_ok=True)
            if self._live_sessions() or not (self._dir / LAUNCHED).exists():
                return False
            stop()
            (self._dir / LAUNCHED).unlink(missing_ok=True)
            return True

    def _live_sessions(self) -> list[int]:
        live = []
        for entry in self._dir.iterdir():
            if not entry.name.isdigit():
                continue
            if pid_exists(int(entry.name)):
                live.append(int(entry.name))
            else:
                entry.unlink(missing_ok=True)  # a killed session: it will never leave
        return live
