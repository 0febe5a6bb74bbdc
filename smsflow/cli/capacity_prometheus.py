"""``smsflow capacity --prometheus URL``: the hourly history from a Prometheus server.

Two range queries over the worker's counters (docs/metrics.md), one sample per hour:

    sum by (tenant, operator) (increase(smsflow_routed_messages_total[1h]))
    sum by (tenant, operator) (increase(smsflow_routed_parts_total[1h]))

A sample at time ``t`` covers the hour before it, so it is counted for the hour starting at
``t - 1h``. ``increase`` is a float (Prometheus extrapolates at the edges of a window and
across counter resets): values are rounded, and an hour whose parts round below its messages
gets as many parts as messages. The counters count what the router passed on when it passed it
on; the topic source counts delivery reports by ``submitted_at``. The two differ by what was
rejected or still queued, and by the router's queueing time (seconds).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from smsflow.domain.capacity import HistoryError, HourlyCount, floor_hour

MESSAGES_QUERY = "sum by (tenant, operator) (increase(smsflow_routed_messages_total[1h]))"
PARTS_QUERY = "sum by (tenant, operator) (increase(smsflow_routed_parts_total[1h]))"
HOUR = timedelta(hours=1)
#: Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000

Cells = dict[tuple[datetime, str, str], int]


def read_history_from_prometheus(
    url: str, *, days: float, now: datetime, timeout_s: float = 30.0
) -> list[HourlyCount]:
    """Hourly counts per tenant and operator for the whole hours in the ``days`` before
    ``now`` (the hour ``now`` is in is not complete: left out)."""
    end = floor_hour(now.astimezone(UTC))  # the end of the last complete hour
    first_hour = end - timedelta(days=days)
    hours = (end - first_hour) / HOUR
    if hours < 1:
        raise HistoryError("--days must cover at least one hour")
    if hours > MAX_POINTS:
        raise HistoryError(f"--days {days:g} is more than Prometheus's {MAX_POINTS:,} points")
    # The sample at t covers the hour before t: t runs from first_hour + 1h to end.
    start = floor_hour(first_hour) + HOUR
    messages = _matrix(url, MESSAGES_QUERY, start, end, timeout_s)
    parts = _matrix(url, PARTS_QUERY, start, end, timeout_s)
    return counts_from_matrices(messages, parts)


def counts_from_matrices(messages: list[Any], parts: list[Any]) -> list[HourlyCount]:
    """Join the two query results (Prometheus ``matrix`` values) into hourly counts."""
    message_cells, part_cells = _cells(messages), _cells(parts)
    counts: list[HourlyCount] = []
    for key in sorted(message_cells.keys() | part_cells.keys()):
        hour, tenant, operator = key
        sent = message_cells.get(key, 0)
        if sent == 0:
            continue  # an hour with no message has no parts either: rounding noise
        counts.append(HourlyCount(hour, tenant, operator, sent, max(part_cells.get(key, 0), sent)))
    if not counts:
        raise HistoryError("Prometheus has no smsflow_routed_messages_total in that range "
                           "(is it scraping the workers?)")
    return counts


def _cells(matrix: list[Any]) -> Cells:
    cells: Cells = {}
    for series in matrix:
        labels: Mapping[str, str] = series.get("metric", {})
        tenant, operator = labels.get("tenant", ""), labels.get("operator", "")
        for stamp, text in series.get("values", []):
            value = round(float(text))
            if value <= 0:
                continue  # no traffic (or NaN-free rounding of a tiny extrapolation)
            hour = datetime.fromtimestamp(float(stamp), UTC) - HOUR
            cells[floor_hour(hour), tenant, operator] = value
    return cells


def _matrix(url: str, query: str, start: datetime, end: datetime, timeout_s: float) -> list[Any]:
    params = urllib.parse.urlencode({
        "query": query, "start": f"{start.timestamp():.0f}", "end": f"{end.timestamp():.0f}",
        "step": "3600",
    })
    address = f"{url.rstrip('/')}/api/v1/query_range?{params}"
    try:
        with urllib.request.urlopen(address, timeout=timeout_s) as response:  # noqa: S310
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise HistoryError(f"Prometheus at {url} refused the query ({exc.code}): {detail}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise HistoryError(f"cannot query Prometheus at {url}: {exc}") from exc
    if body.get("status") != "success" or body.get("data", {}).get("resultType") != "matrix":
        raise HistoryError(f"Prometheus at {url} answered {str(body)[:300]}")
    result: list[Any] = body["data"]["result"]
    return result
