"""The alert rules: promtool accepts them and their unit tests pass; every alert carries the
annotations on-call needs and a runbook section that exists; every alert is tested on both
sides of its threshold; every series a rule reads is exported by the code or documented in
docs/metrics.md as planned or external.

promtool comes from Debian's ``prometheus`` package (``.ci/run`` installs it). Without it these
tests fail: a skipped rules test would let a broken rule through CI unnoticed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.ops.metric_names import (
    ROOT,
    all_code_families,
    doc_families,
    series_names,
    unknown_series,
)

RULES = ROOT / "ops" / "prometheus" / "rules.yml"
RULE_TESTS = sorted((ROOT / "ops" / "prometheus" / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/smsflow/smsflow/blob/main/docs/runbooks/"

def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: `apt-get install -y prometheus` (Debian's "
                    "package; .ci/run does it). The alert rules cannot be checked without it.")
    return path


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_promtool_check_rules() -> None:
    result = subprocess.run([_promtool(), "check", "rules", str(RULES)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_scrape_config() -> None:
    config = ROOT / "ops" / "prometheus" / "prometheus.yml"
    result = subprocess.run([_promtool(), "check", "config", str(config)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool unit tests in ops/prometheus/tests/"
    result = subprocess.run([_promtool(), "test", "rules", *map(str, RULE_TESTS)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_severity_annotations_and_a_runbook_section() -> None:
    for rule in _alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        url = annotations["runbook_url"]
        assert url.startswith(RUNBOOK_BASE), f"{name}: {url}"
        file_name, _, anchor = url.removeprefix(RUNBOOK_BASE).partition("#")
        runbook = RUNBOOKS / file_name
        assert runbook.is_file(), f"{name}: no runbook docs/runbooks/{file_name}"
        anchors = {_slug(line.lstrip("#")) for line in runbook.read_text().splitlines()
                   if line.startswith("#")}
        assert anchor in anchors, f"{name}: docs/runbooks/{file_name} has no section #{anchor}"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), f"never tested firing: {sorted(names - firing)}"
    assert names - quiet == set(), f"never tested quiet: {sorted(names - quiet)}"


def test_every_series_a_rule_reads_is_exported_or_documented() -> None:
    docs = doc_families()
    known = all_code_families() | docs["planned"] | docs["external"]
    for rule in _alerts():
        unknown = unknown_series(rule["expr"], known)
        assert not unknown, (f"{rule['alert']} reads {sorted(unknown)}: neither exported "
                             "nor listed as planned/external in docs/metrics.md")


def test_series_names_are_found_in_expressions() -> None:
    expr = ('sum by (smsc) (rate(smsflow_smpp_submit_responses_total{status=~"A|B"}[5m])) '
            '/ on (x) group_left(y) max(up{job="a"}) > 0.1 and absent(foo_bar)')
    assert series_names(expr) == {"smsflow_smpp_submit_responses_total", "up", "foo_bar"}
