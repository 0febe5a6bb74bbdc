"""When to try a submit_sm again (pure).

Back-pressure answers (ESME_RTHROTTLED, ESME_RMSGQFUL) and a lost connection are the SMSC
asking us to slow down: they retry for long, with backoff, and never fail a message quickly.
Other temporary errors retry a few times. Permanent errors never retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class RetryKind(Enum):
    BACKPRESSURE = "backpressure"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class SubmitRetryPolicy:
    base_delay_s: float = 0.05
    max_delay_s: float = 5.0
    max_backpressure_attempts: int = 50
    max_temporary_attempts: int = 5

    def next_delay(self, kind: RetryKind, attempts: int) -> float | None:
        """Delay before attempt ``attempts + 1``, or None when the part should fail now."""
        if kind is RetryKind.PERMANENT:
            return None
        limit = (
            self.max_backpressure_attempts
            if kind is RetryKind.BACKPRESSURE
            else self.max_temporary_attempts
        )
        if attempts >= limit:
            return None
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** (attempts - 1)))
