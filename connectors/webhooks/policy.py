"""What an attempt's outcome means, and when to try again (pure: time and jitter passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import Enum


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


def classify(status: int | None) -> Verdict:
    """``status`` is the HTTP status, or None when no response came (timeout, refused, reset).

    408 and 429 are the receiver asking us to come back; 5xx and no response are its trouble,
    not the report's. Any other non-2xx (4xx, and 1xx/3xx: redirects are not followed, so a
    receiver cannot bounce signed reports to another host) will not get better by retrying.
    """
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status in (408, 429) or status >= 500:
        return Verdict.RETRY
    return Verdict.REJECTED


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means "-0000"
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class WebhookRetryPolicy:
    """Exponential backoff with jitter: after failed attempt n (1-based) wait between half and
    all of ``min(cap_s, base_s * 2**(n-1))``. With the defaults: up to 1, 2, 4 ... 512 s, then
    300-600 s, so a day's budget is about 200 attempts (144 to 288). A ``Retry-After`` longer
    than the backoff wins, up to ``max_retry_after_s`` (a receiver asking for a week is not
    obeyed past the cap)."""

    base_s: float = 1.0
    cap_s: float = 600.0
    max_retry_after_s: float = 3_600.0

    def backoff(self, attempt: int, jitter: float) -> float:
        """``jitter`` in [0, 1): spreads retries of many reports so they do not hit a recovering
        endpoint in one wave, while keeping at least half the delay."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(max(attempt - 1, 0), 60))
        return ceiling / 2 + ceiling / 2 * jitter

    def next_attempt_at(
        self,
        *,
        attempt: int,
        now: float,
        deadline: float,
        jitter: float,
        retry_after_s: float | None = None,
    ) -> float | None:
        """When to try again after failed attempt ``attempt``, or None when the budget is spent.

        The last try is made at the deadline itself rather than skipped, so a budget always
        ends with an attempt and an endpoint that recovers just in time still gets the report.
        """
        if now >= deadline:
            return None
        delay = self.backoff(attempt, jitter)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return min(now + delay, deadline)
