"""The Grafana dashboard's structure (no Grafana server is packaged for this machine, so it is
not loaded into one): valid JSON with unique panel ids and positions, every panel on the
provisioned datasource, every query reading only series the code exports or docs/metrics.md
lists as planned, and the operations guide's panels present."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.ops.metric_names import ROOT, all_code_families, doc_families, unknown_series

GRAFANA = ROOT / "ops" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "smsflow-overview.json"


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def test_panels_have_unique_ids_and_positions() -> None:
    panels = _dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0


def test_every_panel_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" /
                                  "smsflow.yml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    for panel in _panels():
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, panel["title"]


def test_every_query_reads_exported_or_planned_series() -> None:
    known = all_code_families() | doc_families()["planned"]
    for panel in _panels():
        for target in panel["targets"]:
            unknown = unknown_series(target["expr"], known)
            assert not unknown, f"{panel['title']}: {sorted(unknown)}"


def test_the_guides_panels_are_there() -> None:
    """Submission rate per tenant/operator, queue depth and lag, 15-minute delivery rates, API
    P50/P95/P99, errors by category (docs/metrics.md; the operations guide's list)."""
    exprs = " ".join(target["expr"] for panel in _panels() for target in panel["targets"])
    for needle in ('limiter=~"tenant:.*"', 'smsflow_window_submits{scope="operator"}',
                   "smsflow_kafka_consumer_lag_seconds", "smsflow_limiter_waiting_messages",
                   'smsflow_window_delivery_ratio{scope="route"}',
                   "histogram_quantile(0.99, sum by (le) (rate(smsflow_api_request_duration",
                   "smsflow_rejections_total", "smsflow_smpp_bind_up"):
        assert needle in exprs, needle


def test_dashboard_provider_loads_json_files() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" /
                               "smsflow.yml").read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"]
