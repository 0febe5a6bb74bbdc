"""Exponential reconnect backoff with jitter (pure)."""

from __future__ import annotations

__all__ = ["backoff_delay"]

_MAX_EXPONENT = 32


def backoff_delay(
    attempt: int, *, initial: float, maximum: float, jitter: float, rand: float
) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based).

    The ceiling doubles per attempt from ``initial`` up to ``maximum``; the
    delay is the ceiling minus a random fraction of it:
    ``ceiling * (1 - jitter * rand)`` with ``rand`` in ``[0, 1)``.  With
    ``jitter=0.5`` delays fall in ``(ceiling/2, ceiling]`` ("equal jitter"):
    clients that lost the same SMSC at the same moment spread out, and no delay
    collapses to zero.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be within [0, 1]")
    if not 0.0 <= rand < 1.0:
        raise ValueError("rand must be within [0, 1)")
    ceiling = min(maximum, initial * (2.0 ** min(attempt, _MAX_EXPONENT)))
    return max(0.0, ceiling * (1.0 - jitter * rand))
