"""Messages and parts the router passed on, per (tenant, operator): read by the metrics page
(``smsflow_routed_messages_total`` / ``smsflow_routed_parts_total``) and, through Prometheus, by
``smsflow capacity --prometheus``.

Plain counters on the event loop (the router's emit and the metrics page both run there), so
the hot path pays a dict update and nothing else. Tenant and operator ids come from the
configuration: a bounded label set (docs/metrics.md has the cardinality budget)."""

from __future__ import annotations

from collections import Counter

#: (tenant id, operator id) → messages routed by this worker since it started.
routed_messages: Counter[tuple[str, str]] = Counter()
#: (tenant id, operator id) → SMS parts of those messages.
routed_parts: Counter[tuple[str, str]] = Counter()


def count_routed(tenant_id: str, operator_id: str, parts: int) -> None:
    key = (tenant_id, operator_id)
    routed_messages[key] += 1
    routed_parts[key] += parts
