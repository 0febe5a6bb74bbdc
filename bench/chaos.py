"""Chaos drills: a fault injected mid-stream into a full stack, and every message accounted for.

    python bench/chaos.py --json                        # every scenario, 3,000 messages each
    python bench/chaos.py --messages 20000 --json       # the issue's size (~15 min on 2 cores)
    python bench/chaos.py --scenarios sender-sigkill    # one drill

Each scenario runs on a fresh stack (its own topics, faust app id, worker, sender and SMSC
simulator) on a single-node Kafka broker this bench starts itself in a temporary home on free
ports (never the shared local broker: one scenario kills its broker). The SMSC simulator runs in
this process (``SimulatorThread``) so the drill reads its counters and drops its binds. The
traffic is ``make_traffic``'s mix with one destination per message, so the simulator can tell a
part it accepted twice (same destination, same short_message with its UDH) from another message.

Scenarios (the fault hits once ``--kill-at`` of the messages have a terminal state):

* ``worker-sigkill``: the faust worker SIGKILLed and started again;
* ``sender-sigkill``: the sender SIGKILLed and started again (parts in its windows are in doubt);
* ``sender-sigkill-receipts``: the same, at a moment the simulator has sent receipts the sender
  has not answered yet (between receipt and produce ack): once ``--kill-at`` of the messages'
  receipts went out, SIGKILLed from the simulator's loop right after it wrote receipts to the
  sender's binds; the SMSC sends them again after the re-bind;
* ``broker-sigkill`` / ``broker-sigterm``: the broker killed (or stopped cleanly) and started
  again on its data ``--broker-down-s`` later;
* ``smsc-disconnect``: the simulator drops every bind every ``--drop-every-s`` seconds for the
  whole run (an SMSC outage of ``--drop-for-s``), the sender re-binds each time;
* ``smsc-throttling``: the simulator answers ESME_RTHROTTLED (0x58) to 30 % of the submit_sm
  for the whole run (``throttle_ratio``); the sender must retry them (back-pressure), so every
  message is still delivered; ``smsc_throttled`` counts the 0x58 answers;
* ``receipts-before-resp``: every submit_sm_resp held 30 ms and every receipt sent at once
  (``submit_latency_ms`` 30, ``receipt_delay_ms`` 0, no jitter, on the simulator's one loop), so
  each receipt reaches the sender before the answer to its submit;
* ``duplicate-receipts``: the simulator sends every receipt twice, 50 ms apart
  (``duplicate_receipt_ratio`` 1); ``receipts_duplicated`` counts the copies.

These two fail on any duplicate report as well. The edge scenarios (``webhooks-sigkill``,
``api-sigkill``, ``produce-refused-sender``, ``produce-refused-worker``) are described in
bench/chaos_edges.py.

Per scenario: ``messages`` published; ``terminal`` messages with a terminal state on ``sms.dlr``
or ``sms.rejected`` (deduplicated by message id); ``lost`` without one by the deadline;
``duplicate_reports`` terminal records beyond the first per message id; ``duplicate_submits``
accepted submit_sm the simulator had already accepted for the same message part;
``max_window`` the sender's configured in-flight window (binds times window, summed over the
SMSCs), the bound on parts in doubt. Exits 1 if any scenario lost a message or has more
duplicate submits than the window. Stored in bench/results/chaos.json with the commit, the
machine and its load.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path and bench/api.py would shadow
# the `api` package the API drill needs: take the directory out, put the repository in.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.chaos_edges import EDGE_SCENARIOS, run_edge_scenario  # noqa: E402
from bench.chaos_stack import sender_caught_up, sim_config, unique_destinations  # noqa: E402
from bench.e2e import git_commit, machine, publish  # noqa: E402
from connectors.smsc_sim import SimulatorThread  # noqa: E402
from smsflow.config.store import load_yaml  # noqa: E402
from smsflow.devstack.broker import LocalBroker  # noqa: E402
from smsflow.devstack.flowrun import make_traffic, run_flow  # noqa: E402
from smsflow.devstack.harness import free_port, isolated_settings, prepared_stack, warm_up  # noqa: E402
from smsflow.devstack.stack import LocalStack  # noqa: E402
from smsflow.topics import SENT  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "chaos.json"
SCENARIOS = ("worker-sigkill", "sender-sigkill", "sender-sigkill-receipts", "broker-sigkill",
             "broker-sigterm", "smsc-disconnect", "smsc-throttling", "receipts-before-resp",
             "duplicate-receipts", *EDGE_SCENARIOS)
#: Scenarios whose SMSC faults must not produce a second report for any message.
ONE_REPORT = ("receipts-before-resp", "duplicate-receipts")
Progress = Callable[[str], None]


@dataclass
class Fault:
    """What one scenario does to the stack, driven by the flow's progress callbacks."""

    name: str
    stack: LocalStack
    sim: SimulatorThread
    broker: LocalBroker
    kill_at: int
    broker_down_s: float
    drop_every_s: float
    drop_for_s: float
    progress: Progress
    injected_at_terminal: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _terminal: int = 0

    def on_start(self) -> None:
        if self.name == "smsc-disconnect":
            self._spawn(self._drop_binds)
        elif self.name == "sender-sigkill-receipts":
            # Receipts run ahead of the reports (tracking is the slow stage): by the time 30 %
            # of the messages are terminal, a large burst's receipts may all be answered. So
            # this fault counts receipts, not reports.
            self._spawn(self._kill_sender_inside_receipt_window)

    def on_progress(self, _counts: dict[str, int], terminal: int) -> None:
        self._terminal = terminal
        if (self.injected_at_terminal is not None or terminal < self.kill_at
                or self.name == "sender-sigkill-receipts"):
            return
        if self.name in ("worker-sigkill", "sender-sigkill"):
            self.stack.crash_and_restart("worker-0" if self.name == "worker-sigkill" else "sender")
        elif self.name.startswith("broker-"):
            if self.name == "broker-sigkill":
                self.broker.kill()
            else:
                self.broker.stop()
            self._spawn(self._restart_broker)
        else:
            return
        self.injected_at_terminal = terminal
        self.progress(f"{self.name}: fault injected at {terminal} terminal")

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _kill_sender_inside_receipt_window(self) -> None:
        """Once ``kill_at`` receipts went out, SIGKILL the sender from the simulator's loop
        right after it wrote receipts to the sender (unanswered: no answer is read meanwhile)."""
        first = self.sim.stats.receipts_sent
        while self.sim.stats.receipts_sent - first < self.kill_at:
            if self._stop.wait(0.05):
                self.error = f"fewer than {self.kill_at} receipts in the whole run"
                return
        pid = self.stack.pids()["sender"]
        killed = threading.Event()

        def kill(unacked: int) -> None:  # on the simulator's loop: no answer can arrive now
            self.sim.sim.receipts_written_hook = None
            os.killpg(pid, signal.SIGKILL)
            self.detail["receipts_unacked_at_kill"] = unacked
            self.detail["receipts_requeued_before"] = self.sim.sim.stats.receipts_requeued
            killed.set()

        self.sim.call(setattr, self.sim.sim, "receipts_written_hook", kill)
        if not killed.wait(60):
            self.sim.call(setattr, self.sim.sim, "receipts_written_hook", None)
            self.error = "no receipt was written to the sender within 60 s of arming the kill"
            return
        self.injected_at_terminal = self._terminal
        self.stack.crash_and_restart("sender")  # reaps the killed process, starts a new one
        self.progress(f"{self.name}: sender killed right after a receipt reached it, with "
                      f"{self.detail['receipts_unacked_at_kill']} receipt(s) unanswered")

    def _restart_broker(self) -> None:
        if self._stop.wait(self.broker_down_s):
            return
        started = time.monotonic()
        try:
            self.broker.start(timeout_s=120)
        except Exception as exc:  # reported in the result, not lost in a thread
            self.error = f"broker restart: {exc}"
            return
        self.detail["broker_down_s"] = round(self.broker_down_s + time.monotonic() - started, 1)
        self.progress(f"{self.name}: broker back")

    def _drop_binds(self) -> None:
        drops = 0
        while not self._stop.wait(self.drop_every_s):
            self.sim.set_outage(True)
            self._stop.wait(self.drop_for_s)
            self.sim.set_outage(False)
            drops += 1
            self.detail["smsc_drops"] = drops

    def finish(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(150)
        if self.name == "smsc-disconnect" and self.detail.get("smsc_drops"):
            self.injected_at_terminal = 0  # from the start, all through the run
        if self.name == "sender-sigkill-receipts" and "receipts_requeued_before" in self.detail:
            before = self.detail.pop("receipts_requeued_before")
            self.detail["receipts_sent_again"] = self.sim.stats.receipts_requeued - before


def run_scenario(name: str, args: argparse.Namespace, broker: LocalBroker, max_window: int,
                 progress: Progress) -> dict[str, Any]:
    requests = unique_destinations(make_traffic(args.messages, seed=args.messages))
    with (tempfile.TemporaryDirectory(prefix=f"smsflow-chaos-{name}-") as home,
          SimulatorThread(sim_config(args.sim_config, name)) as sim):
        settings = isolated_settings(broker.address, Path(home), f"chaos-{name}", args.partitions)
        stack = prepared_stack(settings, platform_config=args.platform_config,
                               sim_config=args.sim_config, sim_port=sim.port, simulator=False)
        with stack:
            warm_up_s = warm_up(settings)
            before = sim.stats
            fault = Fault(name, stack, sim, broker, kill_at=round(args.kill_at * args.messages),
                          broker_down_s=args.broker_down_s, drop_every_s=args.drop_every_s,
                          drop_for_s=args.drop_for_s, progress=progress)
            progress(f"{name}: warm-up {warm_up_s:.1f}s; producing {args.messages} messages")
            try:
                result = run_flow(settings, requests, timeout_s=args.timeout,
                                  on_progress=fault.on_progress, on_start=fault.on_start)
            finally:
                fault.finish()
            sender_caught_up(settings)
            stack.check_alive()
            after = sim.stats
    if name == "smsc-throttling":
        fault.detail["smsc_throttled"] = after.throttled - before.throttled
        fault.injected_at_terminal = 0 if fault.detail["smsc_throttled"] else None  # all run
    elif name == "receipts-before-resp":
        fault.detail["receipts_sent"] = after.receipts_sent - before.receipts_sent
        fault.injected_at_terminal = 0 if fault.detail["receipts_sent"] else None
    elif name == "duplicate-receipts":
        fault.detail["receipts_duplicated"] = (after.receipts_duplicated
                                               - before.receipts_duplicated)
        fault.injected_at_terminal = 0 if fault.detail["receipts_duplicated"] else None
    row: dict[str, Any] = {
        "scenario": name,
        "messages": result.messages,
        "terminal": result.terminal,
        "lost": result.lost,
        "duplicate_reports": result.duplicates,
        "duplicate_submits": after.duplicate_submits - before.duplicate_submits,
        "max_window": max_window,
        "fault_at_terminal": fault.injected_at_terminal,
        **fault.detail,
        "fault_error": fault.error,
        "submits_accepted": after.submits_ok - before.submits_ok,
        "sent_records": result.stage_counts.get(SENT, 0),  # a batch of outcomes counts once
        "statuses": dict(result.statuses),
        "rejection_codes": dict(result.rejection_codes),
        "elapsed_s": round(result.elapsed_s, 1),
        "warm_up_s": round(warm_up_s, 1),
        "missing_sample": result.missing[:5],
    }
    progress(f"{name}: {row}")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000, help="messages per scenario")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from {', '.join(SCENARIOS)}")
    parser.add_argument("--kill-at", type=float, default=0.3,
                        help="inject the fault when this fraction of the messages is terminal")
    parser.add_argument("--broker-down-s", type=float, default=10.0)
    parser.add_argument("--drop-every-s", type=float, default=2.0)
    parser.add_argument("--drop-for-s", type=float, default=0.5)
    parser.add_argument("--refuse-for-s", type=float, default=20.0,
                        help="produce-refused-*: how long the broker refuses the produces")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--platform-config", type=Path, default=REPO / "config/bench-platform.yaml")
    parser.add_argument("--sim-config", type=Path, default=REPO / "config/bench-smsc-sim.yaml")
    parser.add_argument("--timeout", type=float, default=600.0, help="per scenario, seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")

    def progress(text: str) -> None:
        print(f"[chaos] {text}", file=sys.stderr, flush=True)

    max_window = sum(s.binds * s.window for s in load_yaml(args.platform_config).smscs)
    load_at_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="smsflow-chaos-broker-") as broker_home:
        broker = LocalBroker(Path(broker_home), port=free_port(), controller_port=free_port())
        broker.exit_with_starter = True  # a killed run must not leave its broker behind
        progress(f"own broker on {broker.start(timeout_s=120)}")
        try:
            for name in scenarios:
                run = run_edge_scenario if name in EDGE_SCENARIOS else run_scenario
                try:
                    rows.append(run(name, args, broker, max_window, progress))
                except Exception as exc:  # one broken drill must not lose the others' rows
                    progress(f"{name}: the drill itself failed: {exc!r}")
                    rows.append({"scenario": name, "lost": None, "fault_at_terminal": None,
                                 "duplicate_submits": 0, "max_window": max_window,
                                 "fault_error": f"drill failed: {exc!r}"})
        finally:
            broker.stop()
    failed = [r["scenario"] for r in rows
              if r["lost"] or r["duplicate_submits"] > r["max_window"] or r["fault_error"]
              or r["fault_at_terminal"] is None
              or (r["scenario"] in ONE_REPORT and r["duplicate_reports"])
              or r.get("id_mismatches") or r.get("unanswered")
              or r.get("source_commits_while_refused") or r.get("records_while_refused")]
    result = {
        "scenarios": rows,
        "failed": failed,
        "messages_per_scenario": args.messages,
        "kill_at": args.kill_at,
        "partitions": args.partitions,
        "platform_config": os.path.relpath(args.platform_config, REPO),
        "sim_config": os.path.relpath(args.sim_config, REPO),
        "commit": git_commit(),
        "machine": machine(load_at_start),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    columns = ("messages", "terminal", "lost", "duplicate_reports", "duplicate_submits",
               "max_window")
    lines = [f"{'scenario':<26}" + "".join(f"{c:>19}" for c in columns)]
    lines += [f"{r['scenario']:<26}" + "".join(f"{r.get(c)!s:>19}" for c in columns)
              for r in rows]
    lines.append(f"failed: {failed or 'none'}")
    publish(result, args.out, as_json=args.json, lines=lines)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
