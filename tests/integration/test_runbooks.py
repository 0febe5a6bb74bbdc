"""The runbooks' configuration steps, run as written (docs/runbooks/): the ``smsflow``
commands against the real broker, on a copy of config/platform.yaml edited like an operator
would.

* Operator outage: disabling the leading route makes ``routes explain --from-topic`` choose
  the fallback; re-enabling brings the route back.
* Compliance breach: ``smsflow tenants quarantine`` makes the tenant's messages refused with
  ``TENANT_QUARANTINED``; ``release`` routes them again; both are on the audit trail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from smsflow.devstack.harness import isolated_settings
from smsflow.devstack.stack import stack_env
from tests.paths import PLATFORM_CONFIG

UK_NUMBER = "+447700900123"


class Operator:
    """Runs ``smsflow`` as the runbook does, with one deployment's environment."""

    def __init__(self, env: dict[str, str], config: Path) -> None:
        self.env = env
        self.config = config

    def smsflow(self, *args: str, exit_codes: tuple[int, ...] = (0,)) -> str:
        result = subprocess.run([sys.executable, "-m", "smsflow.cli", *args], env=self.env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode in exit_codes, f"smsflow {' '.join(args)}: {result.stderr}"
        return result.stdout

    def edit(self, kind: str, ident: str, **changes: Any) -> None:
        """Change one object of the YAML, then `config check` and `config apply` it."""
        document = yaml.safe_load(self.config.read_text())
        (item,) = [item for item in document[kind] if item["id"] == ident]
        item.update(changes)
        self.config.write_text(yaml.safe_dump(document, sort_keys=False))
        self.smsflow("config", "check", str(self.config))
        self.smsflow("config", "apply", str(self.config))

    def explain(self, tenant: str, message_type: str = "transactional") -> dict[str, Any]:
        decision: dict[str, Any] = json.loads(self.smsflow(
            "routes", "explain", "--to", UK_NUMBER, "--tenant", tenant, "--type", message_type,
            "--from-topic", "--json", exit_codes=(0, 1)))  # 1: the message would be refused
        return decision


@pytest.fixture
def operator(kafka_bootstrap: str, tmp_path: Path) -> Operator:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "runbooks", partitions=1)
    env = stack_env(settings)
    env.pop("SMSFLOW_SCHEMA_REGISTRY_URL", None)  # config records: either encoding works
    config = tmp_path / "platform.yaml"
    config.write_text(PLATFORM_CONFIG.read_text())
    running = Operator(env, config)
    running.smsflow("topics", "apply")
    running.smsflow("config", "apply", str(config))
    return running


def test_operator_outage_route_taken_out_and_back(operator: Operator) -> None:
    before = operator.explain("promo-blast", "marketing")
    assert before["route"] == "uk-bulk"
    assert [choice["route"] for choice in before["choices"]] == ["uk-bulk", "uk-direct"]

    operator.edit("routes", "uk-bulk", enabled=False)  # runbook step 3
    during = operator.explain("promo-blast", "marketing")
    assert during["outcome"] == "ROUTED" and during["route"] == "uk-direct"
    assert "uk-bulk" in during["excluded"]

    operator.edit("routes", "uk-bulk", enabled=True)  # runbook step 5
    assert operator.explain("promo-blast", "marketing")["route"] == "uk-bulk"


def test_compliance_breach_quarantine_and_release(operator: Operator) -> None:
    assert operator.explain("shopfast")["outcome"] == "ROUTED"

    operator.smsflow("tenants", "quarantine", "shopfast", "--reason", "T-1: spam")  # step 1
    refused = operator.explain("shopfast")  # step 2
    assert (refused["outcome"], refused["reason_code"]) == ("REJECTED", "TENANT_QUARANTINED")
    assert operator.explain("acme-bank")["outcome"] == "ROUTED"  # nobody else is touched
    assert "TENANT_QUARANTINED" in operator.smsflow("tenants", "audit", "shopfast")

    operator.smsflow("tenants", "release", "shopfast", "--reason", "T-1: approved",
                     "--reject-held")  # runbook step 4
    assert operator.explain("shopfast")["outcome"] == "ROUTED"
    trail = operator.smsflow("tenants", "audit", "shopfast").splitlines()
    assert [line.split()[1] for line in trail] == ["TENANT_QUARANTINED", "TENANT_RELEASED"]
    assert "T-1: approved" in trail[1] and "held messages rejected" in trail[1]
