"""The capacity-exhaustion runbook, run as written (docs/runbooks/capacity-exhaustion.md),
against the real broker, worker, sender, SMSC simulator, Kafka exporter and Prometheus:

a burst builds lag on the single worker's group; step 1's ``promtool query`` names the group
and ``sms.submitted`` or ``sms.routed``; step 2 starts a second worker with the same app id
and the group takes it; step 5 confirms the lag is back to 0 (every message terminal, none
lost); step 6's ``smsflow capacity plan`` sizes the next step from the delivery reports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from smsflow.devstack.flowrun import FlowResult, make_traffic, run_flow, warm_up
from smsflow.devstack.harness import free_port, isolated_settings, prepared_stack
from smsflow.devstack.stack import wait_for_port
from tests.integration.prometheus_stack import ProcessSet
from tests.integration.waiting import wait_until
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.slow

BENCH_PLATFORM = REPO_ROOT / "config" / "bench-platform.yaml"  # limits above the machine's
BENCH_SIM = REPO_ROOT / "config" / "bench-smsc-sim.yaml"
#: Large enough that one worker lags on sms.submitted for several scrapes. 4,000 was too close
#: to what a worker absorbs between two scrapes: a worker leaving less garbage for the
#: collector kept up with it and step 1 never saw lag (session 24, docs/performance.md).
BURST = 12000
#: The burst's own deadline, inside the test's: a stalled burst fails with the stage counts
#: and every process's log, not pytest-timeout's bare stack (session 25's one failure here
#: timed out in ``burst.join`` and left nothing to read).
BURST_DEADLINE_S = 200
#: The worker group's inputs whose lag step 1 reads as "the workers are CPU-bound".
WORKER_INPUTS = (".sms.submitted", ".sms.routed")
#: One sample of promtool's output: ``[metric]{labels} => value @[time]``.
_SAMPLE = re.compile(r"^(?:[a-zA-Z_:][a-zA-Z0-9_:]*)?\{(?P<labels>[^}]*)\} => (?P<value>\S+)",
                     re.MULTILINE)


def promtool_query(prometheus: str, query: str) -> list[tuple[dict[str, str], float]]:
    """Runbook step 1's command; its samples as (labels, value)."""
    out = subprocess.run(["promtool", "query", "instant", prometheus, query],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    samples = []
    for match in _SAMPLE.finditer(out):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        samples.append((labels, float(match["value"])))
    return samples


def _exporter_scrapes(prometheus: str) -> str:
    """For a failure: how the Kafka exporter's scrapes went over the last two minutes. The
    exporter reads each lagging partition's head record while it is scraped, so a scrape
    that outlasted the 1 s timeout while there was lag would hide it. (Sessions 24-25: the
    drill failed in full runs only, with one change to the worker's table writes; the
    exporter's collect measured 0.0-0.22 s during a saturated 20,000-message burst, so this
    is a check, not the known cause.)"""
    found = []
    for query in ('min_over_time(up{job="smsflow-kafka-exporter"}[2m])',
                  'max_over_time(scrape_duration_seconds{job="smsflow-kafka-exporter"}[2m])',
                  'count_over_time(up{job="smsflow-kafka-exporter"}[2m])',
                  # What the exporter saw of the lag at all (session 26: step 1 failed twice
                  # beside another test session while the worker log showed an 8 s backlog).
                  "max by (group, topic) (max_over_time(smsflow_kafka_consumer_lag_records[2m]))",
                  "max by (group, topic) (max_over_time(smsflow_kafka_consumer_lag_seconds[2m]))"):
        try:
            found.append(f"{query}: {promtool_query(prometheus, query)}")
        except (subprocess.SubprocessError, OSError) as exc:
            found.append(f"{query}: {exc}")
    return "--- exporter scrapes\n" + "\n".join(found)


@pytest.mark.timeout(BURST_DEADLINE_S + 240)  # warm-up, the steps' waits and the plan around it
def test_capacity_exhaustion_as_the_runbook_says(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "capacity", partitions=4)
    processes = ProcessSet(tmp_path)
    ports = {"smsflow-worker-0": free_port(), "smsflow-worker-1": free_port(),
             "smsflow-kafka-exporter": free_port()}
    prometheus_port = free_port()
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    stack = prepared_stack(settings, platform_config=BENCH_PLATFORM, sim_config=BENCH_SIM)
    stack.env["SMSFLOW_WORKER_WEB_PORT"] = str(ports["smsflow-worker-0"])
    with stack:
        try:
            cli = [sys.executable, "-m", "smsflow.cli"]
            processes.start("kafka-exporter", [
                *cli, "kafka-exporter", "--port", str(ports["smsflow-kafka-exporter"])],
                stack.env)
            processes.start_prometheus(ports, prometheus_port, stack.env)
            wait_for_port("127.0.0.1", prometheus_port, 30)
            warm_up(settings, timeout_s=120)

            outcome: list[FlowResult] = []
            burst = threading.Thread(target=lambda: outcome.append(
                run_flow(settings, make_traffic(BURST, seed=7), timeout_s=BURST_DEADLINE_S)),
                daemon=True)
            burst.start()

            # Step 1: the worker group lags on sms.submitted or sms.routed, the runbook's sign
            # of CPU-bound workers. A worker of every stage routes faster than it throttles:
            # step 1 saw no lag on sms.submitted twice beside another test session's stack
            # (session 26), once with the router done 10 s before the throttle (worker log).
            def lagging() -> bool:
                return any(labels.get("group") == settings.app_id
                           and labels.get("topic", "").endswith(WORKER_INPUTS) and value > 0
                           for labels, value in promtool_query(
                               prometheus,
                               "max by (group, topic) (smsflow_kafka_consumer_lag_seconds)"))
            wait_until(lagging, timeout_s=60, what="step 1 showing the workers' lag")

            # Step 2: one more worker, same app id (its own web port on this host).
            log_level = os.environ.get("SMSFLOW_STACK_WORKER_LOG_LEVEL", "warn")
            processes.start("worker-1", [*cli, "worker", "--web", "--loglevel", log_level],
                            {**stack.env, "SMSFLOW_WORKER_WEB_PORT":
                             str(ports["smsflow-worker-1"])})

            def members() -> float:
                found = promtool_query(prometheus, "smsflow_kafka_consumer_group_members{"
                                       f'group="{settings.app_id}"}}')
                return found[0][1] if found else 0.0
            wait_until(lambda: members() == 2, timeout_s=90,
                       what="step 2: the worker group with two members")

            # Step 5: every message through, and no lag left.
            burst.join(BURST_DEADLINE_S + 30)
            assert outcome and outcome[0].lost == 0, (
                {**outcome[0].summary(), "stage_counts": outcome[0].stage_counts}
                if outcome else "the burst did not return")
            wait_until(lambda: all(value == 0 for labels, value in promtool_query(
                prometheus, "max by (group) (smsflow_kafka_consumer_lag_seconds)")
                                   if labels.get("group") == settings.app_id),
                       timeout_s=60, what="step 5: the workers' lag back to 0")

            # Step 6: size the next step (from the delivery reports on sms.dlr, the default:
            # a Prometheus started minutes ago has no hourly history to plan from).
            planned = subprocess.run(
                [*cli, "capacity", "plan", "--config", str(BENCH_PLATFORM), "--json"],
                env=stack.env, capture_output=True, text=True, timeout=120, check=False)
            assert planned.returncode == 0, planned.stderr
            plan = json.loads(planned.stdout)
            assert plan["plan"]["worker_replicas"]["value"] >= 1, plan
            assert plan["plan"]["peak_msgs_per_s"] > 0, plan
        except (AssertionError, subprocess.CalledProcessError) as failure:
            raise AssertionError(
                f"{failure}\n{_exporter_scrapes(prometheus)}\n"
                f"{processes.logs(also=stack.processes, lines=40)}") from failure
        finally:
            processes.stop()
