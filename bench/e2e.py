"""End-to-end benchmark: messages through broker, worker(s), sender and SMSC simulator.

    python bench/e2e.py --messages 30000 --json             # burst: the headline (make bench)
    python bench/e2e.py --messages 30000 --workers 2        # two workers of each role
    python bench/e2e.py --messages 30000 --roles all        # one process runs every stage
    python bench/e2e.py --rate 1000 --duration 30           # open loop: paced producer
    python bench/e2e.py --rate 800 --duration 30 --done-ttl 2  # ... expiring done markers

Uses the local broker (started if needed; or SMSFLOW_KAFKA_BOOTSTRAP), an isolated set of
topics and a fresh stack configured by config/bench-platform.yaml, whose limits sit far above
what the machine can push. The workers run split by role (one routing and one delivery
process, pipeline/roles.py; ``--roles all``: one process of every stage); ``--workers N`` is N
per role. ``throttle_wait_*`` (throttled_at - routed_at; it includes the
agent's backlog, so look at an open-loop run) shows they did not bind. After a warm-up,
all messages are produced as one burst (or at ``--rate`` for ``--duration`` seconds) and the
clock runs until every message has a terminal state; latency is from a message's
``submitted_at`` to the moment its terminal record reached Kafka, so a burst's includes the time
queued behind it. CPU is read from /proc for the stack's processes and the broker (not this load
generator) between the first message produced and the last terminal state. Each run is stored
under its scenario name in bench/results/e2e.json, next to the other scenarios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.roles import DELIVERY_GROUP_SUFFIX
from smsflow.devstack.flowrun import make_traffic, percentile, run_flow
from smsflow.devstack.harness import (
    delete_run_topics,
    isolated_settings,
    prepared_stack,
    run_topic_records,
    stage_waits_ms,
    wait_for_group,
    warm_up,
)
from smsflow.devstack.stack import WORKER_SHAPES, context_switches, cpu_seconds, listening_pid

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "e2e.json"


def _bootstrap() -> tuple[str, int | None]:
    """The bootstrap address and the broker's pid (None if it cannot be found)."""
    from smsflow.devstack.broker import LocalBroker

    if os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP"):
        bootstrap = os.environ["SMSFLOW_KAFKA_BOOTSTRAP"]
        return bootstrap, listening_pid(int(bootstrap.rsplit(":", 1)[1]))
    broker = LocalBroker.from_env(home=Path(".smsflow"))
    return broker.start(), broker.pid()


def git_commit() -> str:
    """The short HEAD commit, ``-dirty`` when code (not results) changed: stored with a run."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    # The results file itself does not make the code dirty.
    dirty = git("status", "--porcelain", "--", ".", ":!bench/results").strip()
    return git("rev-parse", "--short", "HEAD").strip() + ("-dirty" if dirty else "")


def python_speed() -> float:
    """This box's speed for plain Python right now: thousands of rounds of a fixed mix of dict,
    string and arithmetic work per second, best of five 50 ms samples. The same code measured
    ~31 % slower on the same box an hour apart (docs/performance.md): compare stored runs only
    at similar speed, as with the load average."""
    best = 0.0
    for _ in range(5):
        rounds, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < 0.05:
            table: dict[str, int] = {}
            for n in range(100):
                key = f"route-{n % 17}"
                table[key] = table.get(key, 0) + n * 3 // 7
            rounds += 1
        best = max(best, rounds / elapsed)
    return round(best / 1000, 2)


def machine(load_at_start: float) -> dict[str, object]:
    """What a stored run says about the box it ran on (it is shared: the load and the speed
    matter)."""
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_1m_at_start": round(load_at_start, 2),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "python_kilorounds_per_s": python_speed(),
    }


def store_scenario(out: Path, scenario: str, result: dict[str, Any]) -> None:
    """Keep ``result`` under ``scenario`` in the results file ``out``, next to the others."""
    stored: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    stored[scenario] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")


def publish(result: dict[str, Any], out: Path, *, as_json: bool, lines: Iterable[str]) -> None:
    """Store one run's ``result`` in ``out``; print it as one JSON object (``--json``) or as
    the human ``lines``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if as_json:
        print(json.dumps(result))
    else:
        for line in lines:
            print(line)


class Profiler:
    """py-spy on one of the stack's processes between the first message and the last report."""

    def __init__(self, name: str, pids: dict[str, int]) -> None:
        if name not in pids:
            raise SystemExit(f"--profile: no process {name!r}; choose from {sorted(pids)}")
        self.pid = pids[name]
        self.out = RESULTS.parent / f"profile-{name}.txt"
        self._spy: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._spy = subprocess.Popen(
            ["py-spy", "record", "--gil", "--format", "raw", "--rate", "200", "--pid",
             str(self.pid), "--output", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self._spy is not None:
            self._spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            self._spy.wait(60)


def _scenario(args: argparse.Namespace) -> str:
    name = f"open-loop-{args.rate:g}" if args.rate else "burst"
    if args.no_receipts:
        name = f"{name}-no-receipts" if args.rate else "no-receipts"
    name += f"-{args.workers}-workers" if args.workers > 1 else ""
    name += f"-done-ttl-{args.done_ttl:g}" if args.done_ttl is not None else ""
    return name + ("-all-in-one" if args.roles == "all" else "")


def _p(values: list[float], q: float) -> float | None:
    found = percentile(values, q)
    return None if found is None else round(found, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000, help="burst size")
    parser.add_argument("--rate", type=float, help="open loop: messages per second ...")
    parser.add_argument("--duration", type=float, default=30.0, help="... for this many seconds")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per role")
    parser.add_argument("--roles", choices=tuple(WORKER_SHAPES), default="split",
                        help="split: routing and delivery workers (the default); all: every "
                             "worker runs every stage")
    parser.add_argument("--no-receipts", action="store_true",
                        help="requests ask for no delivery receipt (registered_delivery=false)")
    parser.add_argument("--done-ttl", type=float, metavar="S",
                        help="forget done markers after S seconds (default: the worker's 1 h). "
                             "A few seconds makes a short run pay what a platform pays from "
                             "its first hour on: expiring every part's and message's marker")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--platform-config", type=Path, default=REPO / "config/bench-platform.yaml")
    parser.add_argument("--sim-config", type=Path, default=REPO / "config/bench-smsc-sim.yaml")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--scenario", help="name in the results file (default: from the flags)")
    parser.add_argument("--profile", metavar="PROCESS",
                        help="py-spy the named process (worker-routing-0, worker-delivery-1, "
                             "sender, smsc-sim; worker-0 with --roles all) during the "
                             "run, GIL-holding samples only; raw stacks to bench/results/"
                             "profile-PROCESS.txt, summary: python bench/profile_summary.py FILE")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (by scenario)")
    args = parser.parse_args()
    messages = round(args.rate * args.duration) if args.rate else args.messages
    scenario = args.scenario or _scenario(args)

    def progress(text: str) -> None:
        print(f"[e2e {scenario}] {text}", file=sys.stderr, flush=True)

    load_at_start = os.getloadavg()[0]
    bootstrap, broker_pid = _bootstrap()
    requests = make_traffic(messages, seed=messages)
    if args.no_receipts:
        requests = [r.model_copy(update={"registered_delivery": False}) for r in requests]
    if args.done_ttl is not None:  # the stack's processes inherit this environment
        os.environ["SMSFLOW_DLR_DONE_TTL_S"] = str(args.done_ttl)
    cpu: dict[str, dict[str, float]] = {}
    switches: dict[str, dict[str, int]] = {}
    roles = WORKER_SHAPES[args.roles]
    with tempfile.TemporaryDirectory(prefix="smsflow-bench-") as home:
        settings = isolated_settings(bootstrap, Path(home), "bench", args.partitions)
        with prepared_stack(settings, platform_config=args.platform_config,
                            sim_config=args.sim_config, workers=args.workers,
                            worker_roles=roles) as stack:
            progress(f"stack started ({args.workers} worker(s) of {'/'.join(roles)}); "
                     "warming up")
            warm_up_s = warm_up(settings)
            wait_for_group(settings, args.workers)
            if "delivery" in roles:
                wait_for_group(settings, args.workers, suffix=DELIVERY_GROUP_SUFFIX)
            warm_up_s += warm_up(settings, probes=4 * args.partitions)  # every worker serving
            pids = {**stack.pids(), **({"broker": broker_pid} if broker_pid else {})}
            progress(f"warm-up {warm_up_s:.1f}s; producing {messages} messages")
            profiler = Profiler(args.profile, pids) if args.profile else None

            def on_start() -> None:
                cpu.update(start=cpu_seconds(pids), own_start={"load": time.process_time()})
                switches.update(start=context_switches(pids))
                if profiler:
                    profiler.start()

            def on_end() -> None:
                cpu.update(end=cpu_seconds(pids), own_end={"load": time.process_time()})
                switches.update(end=context_switches(pids))
                if profiler:
                    profiler.stop()

            result = run_flow(settings, requests, timeout_s=args.timeout,
                              rate_per_s=args.rate, on_start=on_start, on_end=on_end)
            stack.check_alive()
            progress(f"{result.terminal} terminal in {result.elapsed_s:.1f}s; reading stages")
            waits = stage_waits_ms(settings, {r.message_id for r in requests})
    # A long-lived broker that kept every run's ~40 partitions cost 300-500 us more CPU per
    # message after a few dozen runs (docs/performance.md#batching-in-a-backlog).
    records_by_topic = run_topic_records(bootstrap)  # before they are deleted
    delete_run_topics(bootstrap)
    used = {name: round(cpu["end"][name] - cpu["start"][name], 2) for name in pids}
    by_process = {
        "worker": round(sum(s for n, s in used.items() if n.startswith("worker-")), 2),
        "sender": used.get("sender"),
        "broker": used.get("broker"),
        "smsc_sim": used.get("smsc-sim"),
    }
    terminal = max(result.terminal, 1)
    summary = result.summary()
    summary.update(
        scenario=scenario,
        mode="open-loop" if args.rate else "burst",
        rate_per_s=args.rate,
        duration_s=args.duration if args.rate else None,
        workers=args.workers,
        worker_roles=list(roles),
        receipts_requested=not args.no_receipts,
        done_ttl_s=args.done_ttl,
        cpu_s_by_process=by_process,
        # This process (producing the requests, reading the reports): not counted above, but it
        # shares the machine's cores with the stack during the run.
        cpu_s_load_generator=round(cpu["own_end"]["load"] - cpu["own_start"]["load"], 2),
        cpu_s_by_worker={n: s for n, s in used.items() if n.startswith("worker-")},
        cpu_us_per_msg=round(sum(s or 0.0 for s in by_process.values()) / terminal * 1e6),
        cpu_us_per_msg_by_process={
            n: None if s is None else round(s / terminal * 1e6) for n, s in by_process.items()
        },
        # Wake-ups of every thread per terminal message: the fixed cost a steady rate pays
        # more often than a burst (docs/performance.md#a-steady-rate).
        switches_per_msg_by_process={
            name: round((switches["end"][name] - switches["start"][name]) / terminal, 2)
            for name in pids
        },
        # Records the run wrote per terminal message, table changelogs included (the
        # warm-up's few dozen too): the broker's work and every produce call behind it.
        records_per_msg=round(sum(records_by_topic.values()) / terminal, 2),
        records_per_msg_by_topic={
            name: round(count / terminal, 3) for name, count in records_by_topic.items()
        },
        p50_submit_to_sent_ms=_p(waits["submit_to_sent"], 50),
        p99_submit_to_sent_ms=_p(waits["submit_to_sent"], 99),
        throttle_wait_p50_ms=_p(waits["routed_to_throttled"], 50),
        throttle_wait_p99_ms=_p(waits["routed_to_throttled"], 99),
        submit_to_routed_p50_ms=_p(waits["submit_to_routed"], 50),
        submit_to_routed_p99_ms=_p(waits["submit_to_routed"], 99),
        warm_up_s=round(warm_up_s, 2),
        partitions=args.partitions,
        platform_config=os.path.relpath(args.platform_config, REPO),
        sim_config=os.path.relpath(args.sim_config, REPO),
        commit=git_commit(),
        machine=machine(load_at_start),
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if args.no_receipts and result.statuses.get("DELIVERED"):
        summary["warning"] = ("the requests asked for no receipt, yet DELIVERED reports arrived: "
                              "registered_delivery is not honoured downstream (the sender asks "
                              "the SMSC for receipts regardless)")
        progress(str(summary["warning"]))
    stored = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if "messages" in stored:  # the old format: one flat run
        stored = {}
    stored[scenario] = summary
    args.out.write_text(json.dumps(stored, indent=2) + "\n")
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0 if result.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
