"""The app factory: importing the agents builds nothing; create_app builds the whole worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.app import Worker, create_app
from pipeline.faust_patches.guarded_consumer import GuardedTransport
from pipeline.faust_patches.lean_sensors import LeanSensors
from pipeline.faust_patches.raw_events import RawBytesSchema
from smsflow.settings import Settings

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
