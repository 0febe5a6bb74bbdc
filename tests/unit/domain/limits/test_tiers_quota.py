from __future__ import annotations

import pytest

from smsflow.config.models import Tier
from smsflow.domain.limits.quota import QuotaUsage, charge, utc_day
from smsflow.domain.limits.tiers import (
    OffPeak,
    TierPolicy,
    in_off_peak,
    next_off_peak_start,
    parse_hhmm,
)

DAY = 86_400.0
H = 3600.0


def test_parse_hhmm() -> None:
    assert parse_hhmm("00:00") == 0.0
    assert parse_hhmm("22:30") == 22 * H + 1800
    assert parse_hhmm("22:30:15") == 22 * H + 1815
    for bad in ("24:00", "12:60", "12:00:60", "1:2:3:4", "aa:bb", "12"):
        with pytest.raises(ValueError):
            parse_hhmm(bad)


def test_off_peak_window_wrapping_midnight() -> None:
    night = OffPeak.from_hhmm((("22:00", "06:00"),))
    assert in_off_peak(night, 23 * H)
    assert in_off_peak(night, 3 * H)
    assert in_off_peak(night, DAY * 100 + 5 * H)
    assert not in_off_peak(night, 6 * H)
    assert not in_off_peak(night, 12 * H)
    assert next_off_peak_start(night, 12 * H) == pytest.approx(22 * H, abs=1e-3)
    assert next_off_peak_start(night, 23 * H) == 23 * H


def test_off_peak_uses_the_local_offset() -> None:
    # 22:00-06:00 local at UTC+2 is 20:00-04:00 UTC.
    night = OffPeak.from_hhmm((("22:00", "06:00"),), utc_offset_s=2 * H)
    assert in_off_peak(night, 21 * H)
    assert not in_off_peak(night, 5 * H)
    assert next_off_peak_start(night, 12 * H) == pytest.approx(20 * H, abs=1e-3)


def test_several_windows_pick_the_next_one() -> None:
    windows = OffPeak.from_hhmm((("01:00", "02:00"), ("13:00", "14:00")))
    assert next_off_peak_start(windows, 3 * H) == pytest.approx(13 * H, abs=1e-3)
    assert next_off_peak_start(windows, 15 * H) == pytest.approx(DAY + H, abs=1e-3)
    # The returned time is inside the window (no float landing just before it).
    assert in_off_peak(windows, next_off_peak_start(windows, 15 * H))


def test_only_economy_is_held() -> None:
    policy = TierPolicy(economy_off_peak=OffPeak.from_hhmm((("22:00", "06:00"),)))
    assert policy.held(Tier.ECONOMY, 12 * H)
    assert not policy.held(Tier.ECONOMY, 23 * H)
    assert not policy.held(Tier.STANDARD, 12 * H)
    assert not policy.held(Tier.PREMIUM, 12 * H)
    assert policy.released_at(Tier.ECONOMY, 12 * H) == pytest.approx(22 * H, abs=1e-3)
    assert not TierPolicy().held(Tier.ECONOMY, 12 * H)


def test_tier_policy_validation() -> None:
    with pytest.raises(ValueError):
        TierPolicy(min_share={Tier.STANDARD: 0.6, Tier.ECONOMY: 0.5})
    with pytest.raises(ValueError):
        TierPolicy(quantum_parts=0)
    with pytest.raises(ValueError):
        OffPeak(())


def test_quota_charges_parts_and_rejects_what_does_not_fit() -> None:
    usage, ok = charge(None, quota=10, parts=4, now=100.0)
    assert ok and usage == QuotaUsage(day=0, used=4)
    usage, ok = charge(usage, quota=10, parts=6, now=200.0)
    assert ok and usage.used == 10
    rejected, ok = charge(usage, quota=10, parts=1, now=300.0)
    assert not ok and rejected == usage  # a rejected message is not charged
    assert usage.remaining(10, 300.0) == 0


def test_quota_resets_at_utc_midnight() -> None:
    usage, _ = charge(None, quota=3, parts=3, now=DAY - 1)
    assert utc_day(DAY - 1) == 0
    usage, ok = charge(usage, quota=3, parts=3, now=DAY)
    assert ok and usage == QuotaUsage(day=1, used=3)
    assert usage.remaining(3, 2 * DAY) == 3


def test_quota_tolerates_a_clock_stepping_back_over_midnight() -> None:
    usage, _ = charge(None, quota=3, parts=3, now=DAY + 1)
    _, ok = charge(usage, quota=3, parts=1, now=DAY - 1)
    assert not ok


def test_no_quota_still_counts() -> None:
    usage, ok = charge(None, quota=None, parts=7, now=0.0)
    assert ok and usage.used == 7
