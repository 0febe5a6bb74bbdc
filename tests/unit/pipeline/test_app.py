"""The app factory: importing the agents builds nothing; create_app builds the whole worker, or
the stages of its role."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.app import Worker, create_app
from pipeline.faust_patches.guarded_consumer import GuardedTransport
from pipeline.faust_patches.lean_sensors import LeanSensors
from pipeline.faust_patches.raw_events import RawBytesSchema
from pipeline.roles import DELIVERY_GROUP_SUFFIX
from smsflow.settings import Settings, WorkerRole

ROOT = Path(__file__).parents[3]

_IMPORT_WITHOUT_SIDE_EFFECTS = """
import faust

def refuse(*args, **kwargs):
    raise AssertionError("importing an agent module built a faust app")

faust.App.__init__ = refuse
import pipeline.agents.delivery, pipeline.agents.offpeak, pipeline.agents.router
import pipeline.agents.throttle, pipeline.agents.tracking, pipeline.runtime, pipeline.web
import pipeline.app
print("ok")
"""


def test_importing_the_agents_builds_no_app_and_touches_no_directory(tmp_path: Path) -> None:
    # No SMSFLOW_* environment at all, and a working directory where faust would write.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", _IMPORT_WITHOUT_SIDE_EFFECTS], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert list(tmp_path.iterdir()) == []


def test_create_app_registers_every_agent_table_and_stage(worker: Worker) -> None:
    assert {name.rsplit(".", 1)[1] for name in worker.app.agents} == {
        "route", "throttle", "correlate", "aggregate", "merge_windows", "opt_out",
    }
    assert set(worker.app.tables) == {
        "tenant-quota", "dlr-pending", "dlr-parts", "tracking-windows",
        "route-health-state", "opt-outs",
    }
    assert [stage.name for stage in worker.stages] == ["router", "throttle"]
    assert isinstance(worker.app.transport, GuardedTransport)
    assert worker.name("sms.routed") == "unit.sms.routed"
    assert worker.output("sms.routed") is worker.output("sms.routed")


def test_faust_s_own_web_views_are_off(worker: Worker) -> None:
    conf = worker.app.conf
    assert not (conf.web_router_enabled or conf.web_tables_enabled or conf.web_graph_enabled
                or conf.web_stats_enabled or conf.web_metrics_enabled)


def test_the_worker_reads_its_topics_as_raw_bytes_and_runs_the_lean_event_path(
    worker: Worker,
) -> None:
    assert isinstance(worker.topic("sms.submitted").schema, RawBytesSchema)
    assert isinstance(worker.app.sensors, LeanSensors)


def test_the_output_producer_lingers_as_configured(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", kafka_bootstrap="127.0.0.1:1",
                        app_id="unit-linger", topic_prefix="unit.", output_linger_ms=20)
    assert create_app(settings).outputs._config["linger.ms"] == 20


def _role_app(tmp_path: Path, role: WorkerRole) -> Worker:
    return create_app(Settings(home=tmp_path / "home", kafka_bootstrap="127.0.0.1:1",
                               app_id="unit-roles", topic_prefix="unit.", worker_role=role))


def test_a_routing_worker_runs_the_stages_up_to_sms_throttled_in_the_app_group(
    tmp_path: Path,
) -> None:
    worker = _role_app(tmp_path, "routing")
    assert {name.rsplit(".", 1)[1] for name in worker.app.agents} == {
        "route", "throttle", "opt_out"}
    assert set(worker.app.tables) == {"tenant-quota", "opt-outs"}
    assert worker.group_id == worker.app.conf.id == "unit-roles"


def test_a_delivery_worker_runs_the_delivery_stages_in_its_own_group_on_the_shared_tables(
    tmp_path: Path,
) -> None:
    worker = _role_app(tmp_path, "delivery")
    assert {name.rsplit(".", 1)[1] for name in worker.app.agents} == {
        "correlate", "aggregate", "merge_windows"}
    assert worker.stages == []
    assert worker.group_id == worker.app.conf.id == "unit-roles" + DELIVERY_GROUP_SUFFIX
    # The changelogs a worker of every stage writes, so a switch of roles restores them.
    assert {table.changelog_topic.get_topic_name() for table in worker.app.tables.values()} == {
        f"unit-roles-{name}-changelog"
        for name in ("dlr-pending", "dlr-parts", "tracking-windows", "route-health-state")}


def test_a_worker_of_every_stage_keeps_faust_s_changelog_names(worker: Worker) -> None:
    assert worker.app.tables["dlr-pending"].changelog_topic.get_topic_name() == (
        "unit-worker-dlr-pending-changelog")


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="worker_role"):
        Settings(worker_role="sender")  # type: ignore[arg-type]
