"""Metric family names as the code builds them and as docs/metrics.md lists them.

Code: every collector and instrument of every process, built with fake sources (no Kafka, no
faust app), read through ``registry.collect()``: the exposed name is the family name, plus
``_total`` for counters. Doc: the backticked names in the first cell of each table row, by
section: the process sections are "exported", ``Planned`` and ``External`` are not.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from api.metrics import ApiMetrics
from connectors.kafka_exporter.exporter import GroupLag, KafkaLagCollector
from connectors.kafka_exporter.lag import PartitionLag
from connectors.sender.metrics import SenderCollector, SenderMetrics
from connectors.webhooks.lanes import Stats
from connectors.webhooks.metrics import WebhookCollector
from pipeline.metrics import WorkerCollector

ROOT = Path(__file__).resolve().parents[2]
METRICS_DOC = ROOT / "docs" / "metrics.md"
NOT_EXPORTED_SECTIONS = {"Planned": "planned", "External": "external"}
_NAME = re.compile(r"`([a-z_:][a-z0-9_:]*)`")


class _FakeCluster(KafkaLagCollector):
    """The exporter's families as they look with a reachable cluster (no broker needed)."""

    def __init__(self) -> None:  # no AdminClient: collect() only calls the two below
        pass

    def brokers(self) -> int:
        return 1

    def read(self, now_ms: int | None = None) -> list[GroupLag]:
        return [GroupLag("g", 1, {("t", 0): PartitionLag(3, 1.5)})]


def _exposed(registry: CollectorRegistry) -> set[str]:
    return {f"{family.name}_total" if family.type == "counter" else family.name
            for family in registry.collect()}


def _registry(*collectors: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


def code_families() -> dict[str, set[str]]:
    """Exposed family names per process."""
    worker = WorkerCollector(stages=list, delivery_counts=dict, route_health=dict,
                             config_version=lambda: 0)
    sender = SenderMetrics()
    sender.registry.register(SenderCollector(list, dict, dict))
    return {
        "worker": _exposed(_registry(worker)),
        "sender": _exposed(sender.registry),
        "webhooks": _exposed(_registry(WebhookCollector({"report": Stats()}, list, lambda: 0))),
        "kafka-exporter": _exposed(_registry(_FakeCluster())),
        "api": _exposed(ApiMetrics(CollectorRegistry()).registry),
    }


def all_code_families() -> set[str]:
    return set().union(*code_families().values())


def doc_families() -> dict[str, set[str]]:
    """Names in docs/metrics.md tables: {"exported": …, "planned": …, "external": …}."""
    found: dict[str, set[str]] = {"exported": set(), "planned": set(), "external": set()}
    kind = None
    for line in METRICS_DOC.read_text().splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            kind = NOT_EXPORTED_SECTIONS.get(
                title, "exported" if title in {"Worker", "Sender", "Webhooks connector",
                                               "Kafka exporter", "Tenant API"} else None)
            continue
        if kind is None or not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        found[kind].update(_NAME.findall(first_cell))
    return found


#: PromQL words that look like metric names in a tokenised expression.
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "rate", "irate", "increase", "delta", "idelta",
    "histogram_quantile", "abs", "absent", "absent_over_time", "clamp_min", "clamp_max",
    "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "changes", "resets",
    "time", "vector", "scalar", "label_replace", "label_join", "predict_linear", "deriv",
}


def series_names(expr: str) -> set[str]:
    """Metric names an expression reads (strings, matchers, groupings and ranges removed)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text))
    return {name for name in names if name not in PROMQL_WORDS}


_HISTOGRAM_SERIES = re.compile(r"_(bucket|count|sum)$")


def unknown_series(expr: str, known: set[str]) -> set[str]:
    """Series ``expr`` reads that are not in ``known`` (a histogram's ``_bucket``, ``_count``
    and ``_sum`` count as its family)."""
    return {name for name in series_names(expr)
            if name not in known and _HISTOGRAM_SERIES.sub("", name) not in known}
