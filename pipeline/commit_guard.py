"""Counters of what the guarded consumer corrected (logged, exported as metrics, read by tests).

The corrections themselves are in :mod:`pipeline.faust_patches.guarded_consumer` (the faust
workaround) and :mod:`pipeline.offset_rules` (the pure rules).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["GUARD", "CommitGuard", "log_powers_of_two"]


@dataclass
class CommitGuard:
    stale_acks_refused: int = 0
    commits_capped: int = 0
    refetched_skipped: int = 0
    stale_fetches_skipped: int = 0
    head_gaps_held: int = 0
    rewinds: int = 0
    wait_empty_released: int = 0
    held_before_start: int = 0
    buffer_waits: int = 0


GUARD = CommitGuard()


def log_powers_of_two(log: logging.Logger, count: int, message: str, *args: object) -> None:
    """Log the 1st, 2nd, 4th, 8th… occurrence: visible in logs without flooding them."""
    if count & (count - 1) == 0:
        log.info(message, count, *args)
