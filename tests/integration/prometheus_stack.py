"""A real Prometheus (Debian's ``prometheus`` package) over processes of a test's stack.

Shared by the tests that let Prometheus scrape running processes and evaluate
ops/prometheus/rules.yml (test_alerts_fire.py, test_capacity_runbook.py). The rules' ``for:``
durations are shortened to 5 s in the copy Prometheus loads, so tests wait seconds instead of
minutes (the ``for:`` timing itself is covered by the promtool unit tests).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from smsflow.devstack.stack import ManagedProcess

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "rules.yml"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("the prometheus server is not installed: `apt-get install -y prometheus` "
                    "(Debian's package; .ci/run does it)")
    return found


def prometheus_config(tmp: Path, targets: dict[str, int]) -> Path:
    """Scrape ``targets`` (job -> port on 127.0.0.1) every second, with the fast rules."""
    fast_rules = re.sub(r"(?m)^(\s+for:) \S+$", r"\1 5s", RULES.read_text())
    (tmp / "rules.yml").write_text(fast_rules)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                   "scrape_timeout": "1s"},
        "rule_files": [str(tmp / "rules.yml")],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in targets.items()
        ],
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class ProcessSet:
    """The test's processes by name, stopped in reverse order; their log tails for failures."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.processes: dict[str, ManagedProcess] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.tmp / "logs" / f"{name}.log")
        process.start(env)
        self.processes[name] = process
        return process

    def start_prometheus(self, targets: dict[str, int], port: int,
                         env: dict[str, str]) -> ManagedProcess:
        return self.start("prometheus", [
            prometheus_binary(), f"--config.file={prometheus_config(self.tmp, targets)}",
            f"--storage.tsdb.path={self.tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ], env)

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()

    def logs(self, also: Iterable[ManagedProcess] = (), lines: int = 15) -> str:
        """The last ``lines`` of each process's log: this set's, then ``also`` (a stack's)."""
        named = [*self.processes.items(), *((process.name, process) for process in also)]
        return "\n".join(f"--- {name}\n{process.log_tail(lines)}" for name, process in named)
