"""The fixed-waits patch: the table manager starts without faust's 1 s sleep, and the worker's
shutdown waits end when the loop's tasks end (bounded as upstream), not after fixed sleeps."""

from __future__ import annotations

import asyncio
import inspect
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from faust.tables import TableManager
from mode.worker import Worker as ModeWorker

from pipeline.app import Worker
from pipeline.faust_patches import fixed_waits
from pipeline.faust_patches.fixed_waits import PromptTableManager, PromptWorker


def test_upstream_still_has_the_fixed_sleeps_this_replaces() -> None:
    assert "await self.sleep(1.0)" in inspect.getsource(TableManager.on_start)
    assert "await asyncio.sleep(1.0)" in inspect.getsource(ModeWorker._sentinel_task)
    assert "asyncio.sleep(0.1)" in inspect.getsource(ModeWorker._gather_all)


def test_the_worker_app_uses_both(worker: Worker) -> None:
    conf: Any = worker.app.conf  # typed as faust's symbol arguments
    assert conf.TableManager is PromptTableManager
    assert conf.Worker is PromptWorker
    assert isinstance(worker.app.tables, PromptTableManager)


def test_the_tables_start_without_a_sleep() -> None:
    calls: list[str] = []

    async def record(name: str) -> None:
        calls.append(name)

    async def no_sleep(_seconds: float) -> None:
        raise AssertionError("the table manager slept")

    manager = SimpleNamespace(
        should_stop=False, sleep=no_sleep,
        _update_channels=lambda: record("channels"),
        recovery=SimpleNamespace(start=lambda: record("recovery")),
    )
    asyncio.run(PromptTableManager.on_start(cast(Any, manager)))
    assert calls == ["channels", "recovery"]


async def _unwinds_when_cancelled(unwound: list[bool]) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await asyncio.sleep(0.01)  # e.g. a client closing its connection
        unwound.append(True)
        raise


def test_shutdown_returns_once_the_tasks_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    # A bound far beyond the tasks' lives: only waiting for the tasks themselves returns soon.
    monkeypatch.setattr(fixed_waits, "GATHER_TIMEOUT_S", 60.0)
    loop = asyncio.new_event_loop()
    try:
        short = loop.create_task(asyncio.sleep(0.01))
        worker = SimpleNamespace(loop=loop)
        started = time.monotonic()
        PromptWorker._gather_all(cast(Any, worker))
        assert short.done() and not short.cancelled()
        unwound: list[bool] = []
        cancelled = loop.create_task(_unwinds_when_cancelled(unwound))
        loop.run_until_complete(asyncio.sleep(0))
        cancelled.cancel()
        loop.run_until_complete(PromptWorker._sentinel_task(cast(Any, worker)))
        # Upstream sleeps 1 s in the sentinel alone whatever the tasks do.
        assert time.monotonic() - started < 0.9
        assert unwound == [True] and cancelled.done()
    finally:
        loop.close()


def test_a_task_that_does_not_end_is_cancelled_after_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fixed_waits, "GATHER_TIMEOUT_S", 0.05)
    loop = asyncio.new_event_loop()
    try:
        unwound: list[bool] = []
        stuck = loop.create_task(_unwinds_when_cancelled(unwound))
        worker = SimpleNamespace(loop=loop)
        PromptWorker._gather_all(cast(Any, worker))  # cancels what is left, as upstream
        loop.run_until_complete(PromptWorker._sentinel_task(cast(Any, worker)))
        assert stuck.cancelled() and unwound == [True]
    finally:
        loop.close()


def test_a_task_started_during_the_wait_is_waited_for_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fixed_waits, "GATHER_TIMEOUT_S", 60.0)
    loop = asyncio.new_event_loop()
    try:
        later: list[asyncio.Task[None]] = []

        async def hands_over() -> None:
            await asyncio.sleep(0.01)
            later.append(asyncio.get_running_loop().create_task(asyncio.sleep(0.01)))

        first = loop.create_task(hands_over())
        PromptWorker._gather_all(cast(Any, SimpleNamespace(loop=loop)))
        assert first.done() and len(later) == 1 and later[0].done() and not later[0].cancelled()
    finally:
        loop.close()
