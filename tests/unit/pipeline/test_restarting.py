from __future__ import annotations

import asyncio

import pytest

from pipeline.restarting import keep_running


def test_a_failing_or_ending_reader_is_started_again_with_growing_backoff() -> None:
    calls: list[str] = []
    waits: list[float] = []

    async def reader() -> None:
        calls.append("run")
        if len(calls) % 2:
            raise ConnectionError("broker went away")  # odd runs fail, even runs just end

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    restarts = asyncio.run(keep_running("reader", reader, sleep=no_wait, max_restarts=5,
                                        first_backoff_s=1, max_backoff_s=4))
    assert restarts == 5 and len(calls) == 5
    assert waits == [1, 2, 4, 4, 4]


def test_cancellation_ends_it() -> None:
    async def scenario() -> None:
        started = asyncio.Event()

        async def reader() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(keep_running("reader", reader))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
