"""The PrometheusRule is generated from ops/prometheus/rules.yml and never drifts from it."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
import yaml

from tests.k8s.tooling import K8S, kubeconform


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prometheusrule", K8S / "tools/prometheusrule.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _generator()

SAMPLE = """
groups:
  - name: smsflow-delivery
    rules:
      - alert: DeliveryRateLow
        expr: |
          smsflow_window_delivery_ratio{scope="route"} < 0.8
          and on (scope, id) sum by (scope, id) (smsflow_window_terminal_outcomes) >= 50
        for: 10m
        labels: {severity: page}
        annotations: {summary: "Route {{ $labels.route }} delivers under 80 %"}
  - name: smsflow-lag
    rules:
      - record: smsflow:consumer_lag_seconds:max
        expr: max by (group) (smsflow_consumer_lag_seconds)
"""


def test_a_rule_file_becomes_a_schema_valid_prometheus_rule_with_the_same_groups() -> None:
    text = generator.render(SAMPLE)
    rule = yaml.safe_load(text)
    assert rule["kind"] == "PrometheusRule"
    assert "expr: |\n" in text  # multi-line PromQL stays readable, as in the rule file
    assert rule["spec"]["groups"] == yaml.safe_load(SAMPLE)["groups"]
    result = kubeconform(text)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("bad", ["[]", "groups: {}", "groups:\n  - rules: []\n"])
def test_a_file_that_is_not_a_rule_file_is_refused(bad: str) -> None:
    with pytest.raises(generator.RuleFileError):
        generator.render(bad)


def test_committed_prometheus_rule_matches_the_alert_rules() -> None:
    kustomization = (K8S / "base/kustomization.yaml").read_text()
    target = generator.TARGET
    if not generator.SOURCE.exists():
        # ops/prometheus/rules.yml is not on this branch yet: nothing may pretend to be it.
        assert not target.exists()
        assert "prometheusrule.yaml" not in kustomization
        return
    assert target.exists(), "run `python k8s/tools/prometheusrule.py --write`"
    assert target.read_text() == generator.render(generator.SOURCE.read_text()), (
        "k8s/base/prometheusrule.yaml is stale: run `python k8s/tools/prometheusrule.py --write`"
    )
    assert "prometheusrule.yaml" in kustomization, "list prometheusrule.yaml in the base"
