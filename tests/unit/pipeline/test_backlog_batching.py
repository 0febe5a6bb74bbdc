"""Fuller output batches only while the worker is behind (pipeline/backlog_batching.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from pipeline.backlog_batching import (
    BACKLOG,
    CALM_INTERVALS,
    ENTER_AT_LAG,
    LEAVE_BELOW_LAG,
    BacklogDetector,
    batch_in_backlogs,
)


def test_enters_at_the_lag_threshold_and_leaves_after_a_calm_second() -> None:
    detector = BacklogDetector()
    assert detector.observe(ENTER_AT_LAG - 1) is None
    assert detector.observe(ENTER_AT_LAG) is True
    assert detector.observe(ENTER_AT_LAG * 10) is None
    # Between the thresholds: still behind, and the calm count starts again.
    for _ in range(CALM_INTERVALS - 1):
        assert detector.observe(LEAVE_BELOW_LAG - 1) is None
    assert detector.observe(LEAVE_BELOW_LAG) is None
    for _ in range(CALM_INTERVALS - 1):
        assert detector.observe(0) is None
    assert detector.in_backlog
    assert detector.observe(0) is False
    assert not detector.in_backlog
    assert detector.observe(LEAVE_BELOW_LAG) is None  # under the entry threshold: stays out


@dataclass
class _Outputs:
    hand_over_delay_s: float = 0.001


@pytest.mark.asyncio
async def test_the_hand_over_delay_follows_the_backlog_and_is_restored() -> None:
    outputs = _Outputs()
    lags = [0, ENTER_AT_LAG, ENTER_AT_LAG, *([0] * CALM_INTERVALS), ENTER_AT_LAG]
    seen: list[float] = []  # the delay in use before each look at the lag

    def lag() -> int:
        seen.append(outputs.hand_over_delay_s)
        return lags[min(len(seen), len(lags)) - 1]

    task = asyncio.create_task(batch_in_backlogs(outputs, 0.03, lag, interval_s=0))
    while len(seen) <= len(lags):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # 1 ms until the backlog was seen, 30 ms through it, 1 ms again after a calm second, then
    # 30 ms for the next backlog.
    assert seen[:len(lags) + 1] == [
        0.001, 0.001, 0.03, 0.03, *([0.03] * (CALM_INTERVALS - 1)), 0.001, 0.03]
    assert outputs.hand_over_delay_s == 0.001  # restored when the task ends
    assert BACKLOG.active == 0 and BACKLOG.entered >= 2  # /metrics: two backlogs entered


@pytest.mark.asyncio
async def test_a_lag_that_cannot_be_read_mid_rebalance_changes_nothing() -> None:
    outputs = _Outputs()
    readings = iter([ENTER_AT_LAG])
    calls = 0

    def lag() -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            return next(readings)
        raise AssertionError("Partition is not assigned")  # what aiokafka raises

    task = asyncio.create_task(batch_in_backlogs(outputs, 0.03, lag, interval_s=0))
    while calls < 4:
        await asyncio.sleep(0)
    assert not task.done()
    assert outputs.hand_over_delay_s == 0.03  # the one good reading counted
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
