"""Prometheus range-query results → hourly counts (smsflow/cli/capacity_prometheus.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from smsflow.cli.capacity_prometheus import counts_from_matrices, read_history_from_prometheus
from smsflow.domain.capacity import HistoryError, HourlyCount

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)


def _series(tenant: str, operator: str, *points: tuple[float, str]) -> dict[str, Any]:
    return {"metric": {"tenant": tenant, "operator": operator}, "values": list(points)}


def test_a_sample_counts_for_the_hour_before_it_rounded() -> None:
    stamp = T0.timestamp() + 3600
    messages = [_series("acme", "gb-ee", (stamp, "99.6"))]
    parts = [_series("acme", "gb-ee", (stamp, "199.4"))]
    assert counts_from_matrices(messages, parts) == [HourlyCount(T0, "acme", "gb-ee", 100, 199)]


def test_parts_never_below_messages_and_empty_hours_dropped() -> None:
    stamp = T0.timestamp() + 3600
    messages = [_series("acme", "gb-ee", (stamp, "10.2"), (stamp + 3600, "0.3"))]
    parts = [_series("acme", "gb-ee", (stamp, "9.7"), (stamp + 3600, "1.2"))]
    assert counts_from_matrices(messages, parts) == [HourlyCount(T0, "acme", "gb-ee", 10, 10)]


def test_no_traffic_at_all_is_an_error() -> None:
    with pytest.raises(HistoryError, match="no smsflow_routed_messages_total"):
        counts_from_matrices([], [])


def test_days_are_bounded_before_any_query() -> None:
    with pytest.raises(HistoryError, match="at least one hour"):
        read_history_from_prometheus("http://127.0.0.1:1", days=0.01, now=T0)
    with pytest.raises(HistoryError, match="more than"):
        read_history_from_prometheus("http://127.0.0.1:1", days=500, now=T0)
