"""Fuller output batches while the worker is behind, and only then.

Every produce request and every fetch costs the broker and the worker a fixed amount, so a
record that travels in a fuller batch is cheaper: a 20 ms linger instead of 5 ms took ~11 % off
the CPU per message of a burst (docs/performance.md#output-linger). Spent on every record it
adds ~15 ms at each hop, which light traffic would see. In a backlog nobody does: a record's
wait there is its place in the queue, seconds in a burst, and the worker's own CPU is what
decides how soon the queue drains.

So the wait is taken only in a backlog: while the worker's consumer lags its partitions'
high watermarks by :data:`ENTER_AT_LAG` records or more (about half a second of the worker's
work), the output producer holds records ``SMSFLOW_BACKLOG_HAND_OVER_MS`` before handing them
to librdkafka (pipeline/outputs.py, "Grouped hand-over") instead of 1 ms. Once the lag has
stayed under :data:`LEAVE_BELOW_LAG` for a second it goes back. :class:`BacklogDetector` is the
pure decision; :func:`batch_in_backlogs` runs it on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["BACKLOG", "BacklogDetector", "BacklogStats", "batch_in_backlogs"]

log = logging.getLogger(__name__)

#: How often the lag is looked at.
CHECK_EVERY_S = 0.25
#: Records behind at which the worker counts as in a backlog (a single-part message is ~6
#: records to the worker, which takes ~5,000 records a second on this kind of machine).
ENTER_AT_LAG = 2_000
#: ... and under which, for :data:`CALM_INTERVALS` checks in a row (1 s), it no longer does.
LEAVE_BELOW_LAG = 500
CALM_INTERVALS = 4


@dataclass
class BacklogStats:
    """Read by /metrics (pipeline/metrics.py)."""

    active: int = 0  # 1 while the outputs are handed over late
    entered: int = 0  # backlogs since start


BACKLOG = BacklogStats()


class HandOver(Protocol):
    hand_over_delay_s: float


class BacklogDetector:
    """Hysteresis over the consumer's lag (pure: lags are passed in)."""

    def __init__(self, enter_at: int = ENTER_AT_LAG, leave_below: int = LEAVE_BELOW_LAG,
                 calm_intervals: int = CALM_INTERVALS) -> None:
        self.in_backlog = False
        self._enter_at, self._leave_below = enter_at, leave_below
        self._calm_needed, self._calm = calm_intervals, 0

    def observe(self, lag: int) -> bool | None:
        """The new state if ``lag`` changes it, else None."""
        if not self.in_backlog:
            if lag >= self._enter_at:
                self.in_backlog, self._calm = True, 0
                return True
            return None
        if lag >= self._leave_below:
            self._calm = 0
            return None
        self._calm += 1
        if self._calm >= self._calm_needed:
            self.in_backlog = False
            return False
        return None


async def batch_in_backlogs(outputs: HandOver, backlog_delay_s: float, lag: Callable[[], int],
                            *, interval_s: float = CHECK_EVERY_S) -> None:
    """Set ``outputs.hand_over_delay_s`` to ``backlog_delay_s`` in a backlog and back to what it
    was after; runs until cancelled."""
    normal = outputs.hand_over_delay_s
    detector = BacklogDetector()
    try:
        while True:
            await asyncio.sleep(interval_s)
            try:
                behind = lag()
            except Exception:  # mid-rebalance or stopping: skip this look (below)
                # Read across the consumer's thread: during a rebalance or a stop a partition
                # may be gone mid-read (aiokafka asserts, faust raises ConsumerNotStarted). An
                # optimisation must never stop the worker: no reading this time.
                log.debug("the consumer's lag is not readable now", exc_info=True)
                continue
            changed = detector.observe(behind)
            if changed is None:
                continue
            outputs.hand_over_delay_s = backlog_delay_s if changed else normal
            BACKLOG.active = int(changed)
            if changed:
                BACKLOG.entered += 1
            log.info("worker %s a backlog (%d records behind): outputs handed over after %.0f ms",
                     "in" if changed else "out of", behind, outputs.hand_over_delay_s * 1000)
    finally:
        outputs.hand_over_delay_s = normal
        BACKLOG.active = 0
