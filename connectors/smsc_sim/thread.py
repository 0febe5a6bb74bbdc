"""Run the simulator on a background thread, for synchronous code (tests, smpplib clients).

:class:`SimulatorThread` owns an event loop thread running one
:class:`~connectors.smsc_sim.server.SmscSimulator`; its methods hop onto that loop and wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from connectors.smsc_sim.runtime import ConfigSource, SimStats
from connectors.smsc_sim.server import SmscSimulator

from .config import (
    ProfileConfig,
)

R = TypeVar("R")


class SimulatorThread:
    """Run an :class:`SmscSimulator` on its own event loop in a daemon thread.

    ::

        with SimulatorThread(config) as sim:
            client = smpplib.client.Client("127.0.0.1", sim.port, allow_unknown_opt_params=True)
            ...
            sim.set_outage(True)
            print(sim.stats.submits)

    Knob methods are thread-safe (they run on the simulator's loop and wait for the result).
    ``.sim`` is the simulator itself; only touch it from the loop (see :meth:`call`).
    """

    def __init__(
        self, config: ConfigSource = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.sim = SmscSimulator(config, host=host, port=port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.sim.port

    @property
    def host(self) -> str:
        return self.sim.host

    def start(self, timeout: float = 10.0) -> SimulatorThread:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="smsc-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("SMSC simulator did not start")
        if self._error is not None:
            raise RuntimeError("SMSC simulator failed to start") from self._error
        return self

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop_event = asyncio.Event()
            try:
                await self.sim.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stop_event.wait()
            finally:
                await self.sim.stop()

        try:
            asyncio.run(main())
        except BaseException as exc:  # pragma: no cover - surfaced through start()
            self._error = exc
            self._ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def call(self, fn: Callable[..., R], *args: Any, timeout: float = 10.0, **kwargs: Any) -> R:
        """Run ``fn(*args, **kwargs)`` on the simulator's loop and return its result."""
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("simulator thread not running")
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        fut: Future[R] = Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                fut.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    # Thread-safe knobs ---------------------------------------------------------------------

    def set_outage(self, on: bool, *, bind_status: int | None = None) -> None:
        self.call(self.sim.set_outage, on, bind_status=bind_status)

    def set_profile(self, name: str, **changes: Any) -> ProfileConfig:
        return self.call(self.sim.set_profile, name, **changes)

    def originate(self, system_id: str, source: str, destination: str, text: str) -> None:
        """See :meth:`SmscSimulator.originate`."""
        self.call(self.sim.originate, system_id, source, destination, text)

    def account_binds(self, system_id: str) -> int:
        """Binds the account holds now."""
        return self.call(self.sim.account_binds, system_id)

    @property
    def stats(self) -> SimStats:
        """A consistent snapshot of the counters."""
        return self.call(lambda: self.sim.stats.copy())

    def wait_for(
        self, predicate: Callable[[SimStats], bool], timeout: float = 10.0, interval: float = 0.01
    ) -> SimStats:
        """Poll ``predicate(stats)`` until true; raise ``TimeoutError`` with the last stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats
            if predicate(stats):
                return stats
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s; stats={stats}")
            time.sleep(interval)
