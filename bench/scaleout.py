"""Scale-out drill: traffic through 2 workers and 2 senders on a 3-node Kafka cluster, with one
broker and one worker SIGKILLed mid-load and the broker brought back (issue 13).

    python bench/scaleout.py --json                  # 20,000 messages (make-free: run it alone)
    python bench/scaleout.py --messages 5000         # a quicker drill

The cluster is ``smsflow cluster`` (``smsflow/devstack/cluster.py``: combined KRaft nodes on
19092-19094, replication factor 3, min.insync.replicas 2) under ``--cluster-root`` (default
``.smsflow/cluster``); it is started if needed and stopped at the end if this run started it.
Every flow topic and faust's own topics are created with replication factor 3.

After a warm-up the messages are produced as one burst. Once ``--kill-at`` of them have a
terminal state, the node leading partition 0 of the submitted topic and ``worker-1`` are
SIGKILLed; the broker is restarted ``--broker-down-s`` later (in a thread, so the clock keeps
running), the worker is not: its partitions move to ``worker-0``. Throughput (terminal states
per second) is reported before the kill, while the broker is down (kill to the restarted node
serving), and after it. ``duplicates_to_smsc`` counts submits the SMSC accepted more than once
for one message part, read from ``sms.sent`` (no sender is killed, so every submit the SMSC
accepted has its record); the sender's in-flight window bounds it. Stored in
bench/results/scaleout.json with the commit, the machine and its load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from e2e import git_commit, machine  # bench/ is sys.path[0] when run as a script

from smsflow.devstack.cluster import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_PORT,
    REPLICATION_FACTOR,
    LocalCluster,
)
from smsflow.devstack.flowrun import make_traffic, run_flow
from smsflow.devstack.harness import (
    delete_run_topics,
    isolated_settings,
    prepared_stack,
    read_outcomes,
    wait_for_group,
    warm_up,
)
from smsflow.devstack.stack import LocalStack
from smsflow.settings import Settings
from smsflow.topics import SUBMITTED, topic_name

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "scaleout.json"
WORKERS = 2
SENDERS = 2
VICTIM_WORKER = "worker-1"


class Drill:
    """Watches the flow's progress; kills a broker and a worker at the threshold and restarts
    the broker later. Keeps ``(time, terminal)`` samples for the per-phase rates."""

    def __init__(self, cluster: LocalCluster, stack: LocalStack, settings: Settings, *,
                 kill_at: int, broker_down_s: float, progress: Callable[[str], None],
                 victims: frozenset[str] = frozenset({"broker", "worker"})) -> None:
        self.victims = victims
        self.cluster = cluster
        self.stack = stack
        self.settings = settings
        self.kill_at = kill_at
        self.broker_down_s = broker_down_s
        self.progress = progress
        self.samples: list[tuple[float, int]] = []
        self.started_at = 0.0
        self.ended_at = 0.0
        self.killed_at: float | None = None
        self.restarted_at: float | None = None
        self.broker_killed: int | None = None
        self.worker_killed: str | None = None
        self.restart_error: str | None = None
        self._restart: threading.Thread | None = None

    def on_start(self) -> None:
        self.started_at = time.monotonic()
        self.samples.append((self.started_at, 0))

    def on_end(self) -> None:
        self.ended_at = time.monotonic()

    def on_progress(self, _counts: dict[str, int], terminal: int) -> None:
        now = time.monotonic()
        self.samples.append((now, terminal))
        if self.killed_at is None and terminal >= self.kill_at:
            self._kill(terminal)
        elif (self.broker_killed is not None and self._restart is None and self.killed_at
              and now - self.killed_at >= self.broker_down_s):
            self._restart = threading.Thread(target=self._restart_broker, daemon=True)
            self._restart.start()

    def _kill(self, terminal: int) -> None:
        from confluent_kafka.admin import AdminClient

        topic = topic_name(self.settings, SUBMITTED)
        admin = AdminClient({"bootstrap.servers": self.cluster.bootstrap})
        leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
        if "broker" in self.victims:
            self.cluster.kill(leader)
            self.broker_killed = leader
        if "worker" in self.victims:
            self.stack.kill_process(VICTIM_WORKER)
            self.worker_killed = VICTIM_WORKER
        self.killed_at = time.monotonic()
        self.progress(f"{terminal} terminal: SIGKILLed broker node {self.broker_killed}, "
                      f"worker {self.worker_killed}")

    def _restart_broker(self) -> None:
        assert self.broker_killed is not None
        try:
            self.cluster.restart(self.broker_killed, timeout_s=120)
        except Exception as exc:  # reported in the result, not lost in a thread
            self.restart_error = str(exc)
            return
        self.restarted_at = time.monotonic()
        self.progress(f"broker node {self.broker_killed} restarted")

    def join(self) -> None:
        if self._restart is not None:
            self._restart.join(150)

    def terminal_at(self, moment: float) -> int:
        return max((n for at, n in self.samples if at <= moment), default=0)

    def rate(self, start: float | None, end: float | None) -> float | None:
        """Terminal states per second between two moments; None if the phase did not happen."""
        if start is None or end is None or end <= start:
            return None
        return round((self.terminal_at(end) - self.terminal_at(start)) / (end - start), 1)


def duplicates_to_smsc(settings: Settings, message_ids: set[str]) -> int:
    """Accepted submits beyond the first for the same message part (read from sms.sent)."""
    accepted: Counter[tuple[str, int]] = Counter()
    for sent in read_outcomes(settings, timeout_s=30):
        if sent.message_id in message_ids and sent.smsc_message_id is not None:
            accepted[(sent.message_id, sent.part_index)] += 1
    return sum(n - 1 for n in accepted.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000, help="burst size")
    parser.add_argument("--kill-at", type=float, default=0.3,
                        help="kill when this fraction of the messages is terminal")
    parser.add_argument("--broker-down-s", type=float, default=15.0,
                        help="seconds between the kill and the broker's restart")
    parser.add_argument("--kill", default="broker,worker",
                        help="what to SIGKILL mid-load: broker, worker or both (to tell their "
                             "effects apart)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--cluster-root", type=Path, default=REPO / ".smsflow" / "cluster")
    parser.add_argument("--cluster-port", type=int, default=DEFAULT_PORT,
                        help="node i serves clients on this port + i - 1 (default 19092: pick "
                             "another when a private broker of someone else sits there)")
    parser.add_argument("--cluster-controller-port", type=int, default=DEFAULT_CONTROLLER_PORT)
    parser.add_argument("--keep-cluster", action="store_true",
                        help="leave a cluster this run started running")
    parser.add_argument("--logs", type=Path, default=None,
                        help="copy the processes' logs here at the end (set "
                             "SMSFLOW_STACK_WORKER_LOG_LEVEL=info for the workers' details)")
    parser.add_argument("--no-bind-leases", action="store_true",
                        help="every sender opens every SMSC's binds (the single-sender layout); "
                             "default: bind leases, as in Kubernetes")
    parser.add_argument("--platform-config", type=Path, default=REPO / "config/bench-platform.yaml")
    parser.add_argument("--sim-config", type=Path, default=REPO / "config/bench-smsc-sim.yaml")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not set(args.kill.split(",")) <= {"broker", "worker"}:
        parser.error(f"--kill takes broker, worker or broker,worker, not {args.kill!r}")

    def progress(text: str) -> None:
        print(f"[scaleout] {text}", file=sys.stderr, flush=True)

    load_at_start = os.getloadavg()[0]
    cluster = LocalCluster(args.cluster_root, port=args.cluster_port,
                           controller_port=args.cluster_controller_port)
    was_running = all(pid is not None for pid in cluster.pids().values())
    for node in cluster.nodes:  # a cluster this run starts and stops also stops if it is killed
        node.exit_with_starter = not was_running and not args.keep_cluster
    bootstrap = cluster.start(timeout_s=120)
    progress(f"cluster {bootstrap} ({'adopted' if was_running else 'started'})")
    try:
        summary = _run(args, cluster, bootstrap, progress)
    finally:
        delete_run_topics(bootstrap)
        if not was_running and not args.keep_cluster:
            cluster.stop()
    summary.update(commit=git_commit(), machine=machine(load_at_start),
                   measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0 if summary["lost"] == 0 else 1


def _run(args: argparse.Namespace, cluster: LocalCluster, bootstrap: str,
         progress: Callable[[str], None]) -> dict[str, object]:
    requests = make_traffic(args.messages, seed=args.messages)
    with tempfile.TemporaryDirectory(prefix="smsflow-scaleout-") as home:
        settings = isolated_settings(bootstrap, Path(home), "scaleout", args.partitions,
                                     replication_factor=REPLICATION_FACTOR)
        stack = prepared_stack(settings, platform_config=args.platform_config,
                               sim_config=args.sim_config, workers=WORKERS, senders=SENDERS)
        # The Kubernetes layout: the senders share each SMSC's binds (docs/deploy.md).
        stack.env["SMSFLOW_SENDER_BIND_LEASES"] = "false" if args.no_bind_leases else "true"
        with stack:
            progress(f"stack started ({WORKERS} workers, {SENDERS} senders); warming up")
            warm_up_s = warm_up(settings)
            wait_for_group(settings, WORKERS)
            warm_up_s += warm_up(settings, probes=4 * args.partitions)
            progress(f"warm-up {warm_up_s:.1f}s; producing {args.messages} messages")
            drill = Drill(cluster, stack, settings, kill_at=round(args.kill_at * args.messages),
                          broker_down_s=args.broker_down_s, progress=progress,
                          victims=frozenset(args.kill.split(",")))
            result = run_flow(settings, requests, timeout_s=args.timeout,
                              on_progress=drill.on_progress, on_start=drill.on_start,
                              on_end=drill.on_end)
            drill.join()
            stack.check_alive()  # the survivors: worker-0 and both senders
            progress(f"{result.terminal} terminal in {result.elapsed_s:.1f}s; reading sms.sent")
            duplicates = duplicates_to_smsc(settings, {r.message_id for r in requests})
        if args.logs is not None:  # the processes' logs outlive the temporary home
            shutil.copytree(Path(home) / "logs", args.logs, dirs_exist_ok=True)
    restarted_in_run = drill.restarted_at is not None and drill.restarted_at < drill.ended_at
    return {
        "messages": result.messages,
        "terminal": result.terminal,
        "lost": result.lost,
        "duplicates_to_smsc": duplicates,
        "broker_killed": drill.broker_killed,
        "worker_killed": drill.worker_killed,
        "msgs_per_s_before": drill.rate(drill.started_at, drill.killed_at),
        "msgs_per_s_during": drill.rate(drill.killed_at, drill.restarted_at or drill.ended_at),
        "msgs_per_s_after": drill.rate(drill.restarted_at, drill.ended_at)
        if restarted_in_run else None,
        "duplicate_terminal_reports": result.duplicates,
        "elapsed_s": round(result.elapsed_s, 1),
        "broker_down_s": round((drill.restarted_at or 0) - (drill.killed_at or 0), 1)
        if drill.restarted_at else None,
        "broker_restart_error": drill.restart_error,
        "workers": WORKERS,
        "senders": SENDERS,
        "bind_leases": not args.no_bind_leases,
        "brokers": len(cluster.nodes),
        "replication_factor": REPLICATION_FACTOR,
        "partitions": args.partitions,
        "warm_up_s": round(warm_up_s, 1),
        "missing_sample": result.missing[:5],
        "statuses": dict(result.statuses),
    }


if __name__ == "__main__":
    sys.exit(main())
