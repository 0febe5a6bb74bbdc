"""Tier policy: priority order, minimum shares (anti-starvation) and Economy off-peak windows.

Theory of operation
-------------------
Within one route the scheduler serves **Premium before Standard before Economy** (strict
priority), with two corrections:

* **Headroom.** Standard and Economy together may use only ``(1 - headroom)`` of the route's
  rate; the rest is kept free for Premium bursts (``Route.headroom``, default 20%).
* **Minimum share.** A lower tier with a backlog is guaranteed ``min_share * rate``: it has a
  small token bucket refilled at that rate, and whenever that bucket holds the cost of its next
  message, the tier is served *before* higher tiers. So a saturated route still moves Economy at
  its minimum share, and the higher tiers get everything else.

Economy may also be **held for off-peak**: when windows are configured, Economy items wait
(never dropped) until local time is inside one. Times are ``now`` (epoch seconds, UTC) plus a
fixed ``utc_offset_s``; windows may wrap midnight (22:00-06:00). Every day has the same windows,
so held traffic always gets released within a day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from smsflow.domain.traffic import Tier

__all__ = [
    "DAY_S",
    "PRIORITY",
    "OffPeak",
    "TierPolicy",
    "in_off_peak",
    "next_off_peak_start",
    "parse_hhmm",
]

DAY_S = 86_400.0

#: Highest priority first.
PRIORITY: tuple[Tier, ...] = (Tier.PREMIUM, Tier.STANDARD, Tier.ECONOMY)


def parse_hhmm(text: str) -> float:
    """``"22:30"`` (or ``"22:30:15"``) → seconds after midnight."""
    fields = text.split(":")
    if len(fields) not in (2, 3) or not all(f.isdigit() for f in fields):
        raise ValueError(f"not a time of day: {text!r}")
    hours, minutes, seconds = (int(f) for f in (*fields, "0")[:3])
    if not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 60):
        raise ValueError(f"not a time of day: {text!r}")
    return float(hours * 3600 + minutes * 60 + seconds)


@dataclass(frozen=True, slots=True)
class OffPeak:
    """Daily windows ``(start_s, end_s)`` in seconds after local midnight; may wrap midnight."""

    windows: tuple[tuple[float, float], ...]
    utc_offset_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("OffPeak needs at least one window")
        for start, end in self.windows:
            if not (0 <= start < DAY_S and 0 <= end < DAY_S) or start == end:
                raise ValueError(f"bad off-peak window {(start, end)}")

    @classmethod
    def from_hhmm(cls, windows: tuple[tuple[str, str], ...], utc_offset_s: float = 0.0) -> OffPeak:
        return cls(tuple((parse_hhmm(a), parse_hhmm(b)) for a, b in windows), utc_offset_s)


def _local_seconds(now: float, utc_offset_s: float) -> float:
    return (now + utc_offset_s) % DAY_S


def in_off_peak(off_peak: OffPeak, now: float) -> bool:
    t = _local_seconds(now, off_peak.utc_offset_s)
    for start, end in off_peak.windows:
        if start < end:
            if start <= t < end:
                return True
        elif t >= start or t < end:
            return True
    return False


def next_off_peak_start(off_peak: OffPeak, now: float) -> float:
    """``now`` if inside a window, else the epoch time the next window opens."""
    if in_off_peak(off_peak, now):
        return now
    t = _local_seconds(now, off_peak.utc_offset_s)
    delays = [(start - t) % DAY_S for start, _ in off_peak.windows]
    # A microsecond past the boundary, so float round-off never lands just before it.
    return now + min(delays) + 1e-6


def _default_min_share() -> Mapping[Tier, float]:
    return MappingProxyType({Tier.STANDARD: 0.10, Tier.ECONOMY: 0.05})


@dataclass(frozen=True)
class TierPolicy:
    """How tiers share a saturated lane.

    ``min_share``: guaranteed fraction of the lane's rate for a tier with a backlog (Premium
    needs none: it has priority). ``economy_off_peak``: if set, Economy waits for its windows.
    ``quantum_parts``: deficit-round-robin quantum between tenants inside one tier of one lane,
    so one tenant's backlog on a route does not queue another tenant of the same tier behind it.
    """

    min_share: Mapping[Tier, float] = field(default_factory=_default_min_share)
    economy_off_peak: OffPeak | None = None
    quantum_parts: int = 10

    def __post_init__(self) -> None:
        if any(not 0 <= share < 1 for share in self.min_share.values()):
            raise ValueError("min shares must be in [0, 1)")
        if sum(self.min_share.values()) >= 1:
            raise ValueError("min shares must add up to less than 1")
        if self.quantum_parts <= 0:
            raise ValueError("quantum_parts must be > 0")

    def held(self, tier: Tier, now: float) -> bool:
        """True if ``tier`` traffic must wait at ``now`` (Economy outside off-peak windows)."""
        return (
            tier is Tier.ECONOMY
            and self.economy_off_peak is not None
            and not in_off_peak(self.economy_off_peak, now)
        )

    def released_at(self, tier: Tier, now: float) -> float:
        """When held ``tier`` traffic may next flow (``now`` if not held)."""
        if tier is Tier.ECONOMY and self.economy_off_peak is not None:
            return next_off_peak_start(self.economy_off_peak, now)
        return now
