"""Commit barriers are awaited at every partition revocation too (pipeline/faust_patches/
commit_hooks.py): the next assignment's table recovery must see every changelog write of ours."""

from __future__ import annotations

import asyncio

import faust
import pytest

from pipeline.faust_patches.commit_hooks import add_commit_barrier, barriers_of


@pytest.mark.asyncio
async def test_a_revocation_waits_for_the_barrier_before_it_returns() -> None:
    app = faust.App("unit-commit-hooks", broker="memory://")
    stored = asyncio.Event()

    async def flush() -> None:
        await asyncio.sleep(0.05)  # a record still in flight when the rebalance starts
        stored.set()

    add_commit_barrier(app, flush)
    assert barriers_of(app) == (flush,)
    await app.on_partitions_revoked.send(set())
    assert stored.is_set(), "faust's revocation signal returned before our producer flushed"


@pytest.mark.asyncio
async def test_a_clean_stop_awaits_the_barrier_after_the_consumer_stopped() -> None:
    """What no commit wrote (a table change made while idle) is written at a clean stop."""
    app = faust.App("unit-commit-hooks-stop", broker="memory://")
    flushed: list[str] = []

    async def flush() -> None:
        flushed.append("barrier")

    add_commit_barrier(app, flush)
    await app.on_before_shutdown.send()
    assert flushed == ["barrier"]


@pytest.mark.asyncio
async def test_a_failing_barrier_fails_the_revocation() -> None:
    app = faust.App("unit-commit-hooks-failing", broker="memory://")

    async def refused() -> None:
        raise RuntimeError("an output record was not stored")

    add_commit_barrier(app, refused)
    with pytest.raises(RuntimeError, match="not stored"):
        await app.on_partitions_revoked.send(set())
