"""A deterministic share of events, for the simulator's fault options (drills, not sampling).

``Share(0.3)`` answers True for 30 of every 100 calls, spread evenly (the 4th, 7th, 10th, ...):
the n-th call is picked when ``floor(n * ratio)`` steps up, so a long run never drifts the way
an accumulated float does, and two runs of a drill inject exactly the same faults.
"""

from __future__ import annotations


class Share:
    __slots__ = ("n", "ratio")

    def __init__(self, ratio: float) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"share {ratio} outside [0, 1]")
        self.ratio = ratio
        self.n = 0

    def __bool__(self) -> bool:
        """False when the share is 0: the hot path skips the call entirely."""
        return self.ratio > 0.0

    def pick(self) -> bool:
        """
        >>> s = Share(0.3); [s.pick() for _ in range(10)].count(True)
        3
        >>> s = Share(1.0); all(s.pick() for _ in range(5))
        True
        """
        n = self.n = self.n + 1
        return int(n * self.ratio) > int((n - 1) * self.ratio)
