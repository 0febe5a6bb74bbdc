"""Noisy neighbour: tenant A bursts at 10x its limit while tenant B sends steadily.

    python bench/isolation.py --json --out bench/results/isolation.json

A real stack (local broker, one faust worker, the SMPP sender, the SMSC simulator) on isolated
topics with **one partition**, so A's and B's traffic share every partition and the worker.
Timeline: a settling period and a baseline (A at half its limit, B steady), a burst (A at
``--burst-factor`` times its limit for ``--burst-s``), then B keeps sending steadily while A's
excess drains at A's limit.

Which isolation this measures is chosen with ``--level`` and stated in the output
(``isolation``):

* ``tenant`` (default): the router enforces tenant limits. A and B send on the **same route**
  (tps far above both), so the only limit A meets is its tenant limit: A's excess waits in A's
  tenant lane at the router and reaches the throttle at A's rate.
* ``route``: tenant limits far above the traffic; A and B on different routes sharing the
  partition and the worker, A's route at A's limit: A's excess waits in its route lane at the
  throttle (no head-of-line blocking across routes).

Reported: B's end-to-end latency (``submitted_at`` to the terminal record on ``sms.dlr``; it
includes the simulator's receipt delay of ~150 ms) per phase, B's submit-to-routed time
(``routed_at`` is the router's release), B's wait in the throttle (``routed_at`` to
``throttled_at``), ``b_deferred`` (how often a limiter on B's path stopped a lane, from the
worker's metrics log: B's tenant lane, plus the lane of B's route; 0 means B never waited for a
limit), and A's lost messages and release rate while its excess drains.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, KafkaError
from hdrh.histogram import HdrHistogram

from connectors.producer import SmsProducer, new_request
from connectors.terminal_reader import TerminalReader
from pipeline.faust_patches.fetch_wait import FETCH_MAX_WAIT_MS
from schemas.models import RoutedMessage
from smsflow.devstack.flowrun import run_flow
from smsflow.devstack.harness import delete_run_topics, isolated_settings, prepared_stack
from smsflow.devstack.stack import LocalStack, ManagedProcess, wait_for_port
from smsflow.settings import Settings
from smsflow.topics import DLR, REJECTED, SUBMITTED, THROTTLED, topic_name

REPO = Path(__file__).resolve().parents[1]
SIM_CONFIG = REPO / "config" / "demo-smsc-sim.yaml"
A_PREFIX = "+447700"  # gb-ee → route a-route
B_PREFIX = "+447701"  # gb-vodafone → route b-route


def _bootstrap() -> str:
    if os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP"):
        return os.environ["SMSFLOW_KAFKA_BOOTSTRAP"]
    from smsflow.devstack.broker import LocalBroker

    return LocalBroker.from_env(home=REPO / ".smsflow").start()


SHARED_ROUTE_TPS = 2000.0  # tenant level: far above A's burst, so the route never holds A


def platform_config(level: str, a_limit: float, b_limit: float) -> dict[str, Any]:
    """Tenant level: A and B limited as tenants, on one shared route. Route level: tenants
    unlimited in practice, A and B on their own routes (one operator each) at their limits.
    One SMSC; headroom 0: a Standard tenant meets the route's whole tps."""
    tenant_limits = (a_limit, b_limit) if level == "tenant" else (10_000.0, 10_000.0)
    if level == "tenant":
        routes: list[dict[str, Any]] = [
            {"id": "shared", "smsc": "smsc-uk", "operators": ["gb-ee", "gb-vodafone"],
             "tps": SHARED_ROUTE_TPS, "headroom": 0, "cost": 0.01},
        ]
    else:
        routes = [
            {"id": "a-route", "smsc": "smsc-uk", "operators": ["gb-ee"], "tps": a_limit,
             "headroom": 0, "cost": 0.01},
            {"id": "b-route", "smsc": "smsc-uk", "operators": ["gb-vodafone"], "tps": b_limit,
             "headroom": 0, "cost": 0.01},
        ]
    return {
        "tenants": [
            {"id": "tenant-a", "name": "A", "tier": "standard",
             "rate_limit_pps": tenant_limits[0]},
            {"id": "tenant-b", "name": "B", "tier": "standard",
             "rate_limit_pps": tenant_limits[1]},
        ],
        "operators": [
            {"id": "gb-ee", "name": "EE", "country": "GB", "mcc_mnc": "23430",
             "prefixes": [A_PREFIX]},
            {"id": "gb-vodafone", "name": "Vodafone UK", "country": "GB", "mcc_mnc": "23415",
             "prefixes": [B_PREFIX]},
        ],
        "smscs": [
            {"id": "smsc-uk", "host": "127.0.0.1", "port": 2775, "system_id": "smsc-uk",
             "password": "uk-pass", "region": "eu-west", "binds": 2, "window": 64},
        ],
        "routes": routes,
    }


def start_stack(stack: LocalStack) -> None:
    """LocalStack.start, with the worker logging at info (its throttle metrics lines)."""
    logs = stack.home / "logs"

    def cli(*args: str) -> list[str]:
        return [sys.executable, "-m", "smsflow.cli", *args]

    sim = ManagedProcess(
        "smsc-sim",
        cli("smsc-sim", "--config", str(stack.sim_config), "--port", str(stack.sim_port)),
        logs / "smsc-sim.log",
    )
    sim.start(stack.env)
    stack.processes.append(sim)
    wait_for_port("127.0.0.1", stack.sim_port, 20)
    worker = ManagedProcess("worker-0", cli("worker", "--loglevel", "info"),
                            logs / "worker-0.log")
    worker.start(stack.env)
    stack.processes.append(worker)
    sender = ManagedProcess("sender", cli("sender"), logs / "sender.log")
    sender.start(stack.env)
    stack.processes.append(sender)


@dataclass
class Sent:
    tenant: str
    phase: str
    submitted_ms: float
    terminal_ms: float | None = None


Phases = dict[str, tuple[float, float]]


def plan(args: argparse.Namespace) -> tuple[list[tuple[float, str]], Phases]:
    """(offset in s, tenant) for every message, and the phases' time ranges."""
    settle, burst = args.settle_s, args.burst_s
    base = settle + args.baseline_s  # the baseline ends (and the burst starts) here
    burst_rate = args.a_limit * args.burst_factor
    excess = burst * (burst_rate - args.a_limit)
    drain = excess / args.a_limit
    end = base + burst + drain + 5.0
    phases = {
        "settle": (0.0, settle),  # not reported: the stack's first seconds of traffic
        "baseline": (settle, base),
        "burst": (base, base + burst),
        "backlog": (base + burst, base + burst + drain),
        "after": (base + burst + drain, end),
    }
    events: list[tuple[float, str]] = []

    def steady(rate: float, start: float, stop: float, tenant: str) -> None:
        n = int((stop - start) * rate)
        events.extend((start + i / rate, tenant) for i in range(n))

    steady(args.a_limit * 0.5, 0.0, base, "tenant-a")
    steady(burst_rate, base, base + burst, "tenant-a")
    steady(args.b_rate, 0.0, end, "tenant-b")
    events.sort()
    return events, phases


def _phase(phases: dict[str, tuple[float, float]], t: float) -> str:
    for name, (start, stop) in phases.items():
        if start <= t < stop:
            return name
    return "after"


def _throttled(settings: Settings) -> dict[str, RoutedMessage]:
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap, "group.id": f"iso-{uuid.uuid4()}",
        "auto.offset.reset": "earliest", "enable.partition.eof": True,
    })
    topic = topic_name(settings, THROTTLED)
    consumer.subscribe([topic])
    partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    eof: set[int] = set()
    out: dict[str, RoutedMessage] = {}
    while len(eof) < partitions:
        message = consumer.poll(10)
        if message is None:
            break
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                eof.add(message.partition() or 0)
            continue
        routed = RoutedMessage.from_avro(message.value())
        out.setdefault(routed.request.message_id, routed)
    consumer.close()
    return out


_LIMITER = re.compile(
    r"(?:router|throttle): (?P<limiter>(?:route|tenant):\S+) allowed=(?P<allowed>\d+)/\d+parts "
    r"waiting=(?P<waiting>\d+)/\d+parts rejected=\d+ blocked=(?P<blocked>\d+) rate=(?P<rate>\S+)"
)


def limiter_counters(log_path: Path) -> dict[str, dict[str, str]]:
    """The last metrics line per limiter (``route:<id>``, ``tenant:<id>``) in the worker's log."""
    last: dict[str, dict[str, str]] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = _LIMITER.search(line)
        if match:
            last[match["limiter"]] = match.groupdict()
    return last


def _blocked(counters: dict[str, dict[str, str]], limiter: str) -> int | None:
    entry = counters.get(limiter)
    return int(entry["blocked"]) if entry else None


def _p(hist: HdrHistogram, q: float) -> int:
    return int(hist.get_value_at_percentile(q)) if hist.get_total_count() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", choices=("tenant", "route"), default="tenant",
                        help="which limit A bursts against (see the module docstring)")
    parser.add_argument("--a-limit", type=float, default=30.0, help="A's limit, parts/s")
    parser.add_argument("--b-limit", type=float, default=200.0, help="B's limit, parts/s")
    parser.add_argument("--b-rate", type=float, default=20.0, help="B's steady rate, msg/s")
    parser.add_argument("--burst-factor", type=float, default=10.0)
    parser.add_argument("--burst-s", type=float, default=6.0)
    parser.add_argument("--settle-s", type=float, default=10.0,
                        help="traffic as in the baseline, not reported")
    parser.add_argument("--baseline-s", type=float, default=20.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--keep-logs", type=Path, help="copy the stack's logs to this directory")
    args = parser.parse_args()

    def say(*parts: object) -> None:
        if not args.json:
            print(*parts, flush=True)

    events, phases = plan(args)
    isolation = args.level
    with tempfile.TemporaryDirectory(prefix="smsflow-isolation-") as tmp:
        home = Path(tmp)
        settings = isolated_settings(_bootstrap(), home, "isolation", partitions=1)
        config_path = home / "platform.yaml"
        config = platform_config(isolation, args.a_limit, args.b_limit)
        config_path.write_text(yaml.safe_dump(config))
        stack = prepared_stack(settings, platform_config=config_path, sim_config=SIM_CONFIG)
        try:
            start_stack(stack)
            probe = new_request("tenant-b", f"{B_PREFIX}999999", "warm-up")
            if run_flow(settings, [probe], timeout_s=120).lost:
                raise TimeoutError("the stack did not complete a probe message")
            say(f"stack up; isolation={isolation}; {len(events)} messages over "
                f"{events[-1][0]:.0f}s")
            sent, throttled, started = _drive(settings, events, phases, say)
            time.sleep(12)  # one more metrics interval of the worker
            stack.check_alive()
            counters = limiter_counters(home / "logs" / "worker-0.log")
        finally:
            stack.stop()
            delete_run_topics(settings.kafka_bootstrap)  # later runs must not carry them
            if args.keep_logs:
                shutil.copytree(home / "logs", args.keep_logs, dirs_exist_ok=True)
    result = _summarize(args, isolation, phases, sent, throttled, counters, started)
    text = json.dumps(result, indent=2)
    print(text if args.json else f"\n{text}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


def _drive(
    settings: Settings, events: list[tuple[float, str]], phases: dict[str, tuple[float, float]],
    say: Any,
) -> tuple[dict[str, Sent], dict[str, RoutedMessage], float]:
    sent: dict[str, Sent] = {}
    lock = threading.Lock()
    reader = TerminalReader(
        settings.kafka_bootstrap, topic_name(settings, DLR), topic_name(settings, REJECTED)
    )
    producing = threading.Event()
    producing.set()

    def read_terminals() -> None:
        while True:
            for terminal in reader.poll(timeout_s=0.5):
                message_id = (
                    terminal.report.message_id if terminal.report
                    else terminal.rejection.message_id if terminal.rejection else None
                )
                with lock:
                    entry = sent.get(message_id or "")
                    if entry is not None and entry.terminal_ms is None:
                        entry.terminal_ms = float(terminal.timestamp_ms)
            with lock:
                done = not producing.is_set() and all(
                    s.terminal_ms is not None for s in sent.values()
                )
            if done or stop_reading.is_set():
                return

    stop_reading = threading.Event()
    thread = threading.Thread(target=read_terminals, daemon=True)
    thread.start()
    producer = SmsProducer(settings.kafka_bootstrap, topic_name(settings, SUBMITTED))
    start = time.monotonic()
    started = time.time()
    counter = {"tenant-a": 0, "tenant-b": 0}
    for offset, tenant in events:
        delay = start + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        counter[tenant] += 1
        prefix = A_PREFIX if tenant == "tenant-a" else B_PREFIX
        now = datetime.now(UTC)
        # 13 characters: a valid UK mobile number (the router checks numbers).
        request = new_request(tenant, f"{prefix}{counter[tenant] % 1000000:06d}",
                              f"{tenant} message {counter[tenant]}", now=now)
        with lock:
            sent[request.message_id] = Sent(tenant, _phase(phases, offset),
                                            now.timestamp() * 1000.0)
        producer.submit(request)
    if producer.flush(60) != 0 or producer.failed:
        raise RuntimeError("Kafka did not acknowledge every message")
    producing.clear()
    say(f"produced {len(events)} in {time.monotonic() - start:.1f}s; waiting for terminals")
    thread.join(timeout=300)
    stop_reading.set()
    thread.join(timeout=5)
    reader.close()
    return sent, _throttled(settings), started


def _summarize(
    args: argparse.Namespace, isolation: str, phases: dict[str, tuple[float, float]],
    sent: dict[str, Sent], throttled: dict[str, RoutedMessage],
    counters: dict[str, dict[str, str]], started: float,
) -> dict[str, Any]:
    def hist() -> HdrHistogram:
        return HdrHistogram(1, 3_600_000, 3)

    e2e = {phase: hist() for phase in phases}
    waits = {phase: hist() for phase in phases}  # routed_at → throttled_at
    to_router = {phase: hist() for phase in phases}  # submitted → routed_at (router release)
    a_lost = b_lost = 0
    a_release: list[float] = []  # where A's excess waits: the router (tenant) or throttle (route)
    for message_id, entry in sent.items():
        routed = throttled.get(message_id)
        if entry.tenant == "tenant-a":
            if entry.terminal_ms is None:
                a_lost += 1
            if routed is not None and routed.throttled_at is not None:
                stamp = routed.routed_at if isolation == "tenant" else routed.throttled_at
                a_release.append(stamp.timestamp())
            continue
        if entry.terminal_ms is None:
            b_lost += 1
            continue
        e2e[entry.phase].record_value(max(1, int(entry.terminal_ms - entry.submitted_ms)))
        if routed is not None and routed.throttled_at is not None:
            wait_ms = (routed.throttled_at - routed.routed_at).total_seconds() * 1000.0
            waits[entry.phase].record_value(max(1, int(wait_ms)))
            routed_ms = routed.routed_at.timestamp() * 1000.0 - entry.submitted_ms
            to_router[entry.phase].record_value(max(1, int(routed_ms)))
    a_release.sort()
    base, burst_end = phases["burst"]
    a_count = sum(1 for s in sent.values() if s.tenant == "tenant-a")
    # Every limiter on B's path: its tenant lane, and its route's lane (shared with A at the
    # tenant level, so an upper bound of B's stops there).
    b_route = "route:shared" if isolation == "tenant" else "route:b-route"
    a_route = "route:shared" if isolation == "tenant" else "route:a-route"
    b_tenant_blocked = _blocked(counters, "tenant:tenant-b")
    b_route_blocked = _blocked(counters, b_route)
    b_deferred = None
    if b_tenant_blocked is not None and b_route_blocked is not None:
        b_deferred = b_tenant_blocked + b_route_blocked
    # A's release rate while its excess drains: from one second after the burst to the end.
    burst_end_epoch = started + burst_end
    drain = [t for t in a_release if t >= burst_end_epoch + 1.0]
    drain_rate = None
    if len(drain) > 20 and drain[-1] > drain[0]:
        drain_rate = round((len(drain) - 1) / (drain[-1] - drain[0]), 2)
    baseline_p99 = _p(e2e["baseline"], 99)

    def ratio(phase: str) -> float | None:
        return round(_p(e2e[phase], 99) / baseline_p99, 2) if baseline_p99 else None

    reported = [phase for phase in phases if phase != "settle"]
    result: dict[str, Any] = {
        "isolation": isolation,
        "measures": (
            "tenant-level isolation: A and B on one shared route (tps far above both); A's "
            "excess waits in its tenant lane at the router"
            if isolation == "tenant"
            else "route-level isolation: A and B on different routes sharing one partition and "
            "one worker, A's route at A's limit; A's excess waits in its route lane at the "
            "throttle"
        ),
        "a_limit_pps": args.a_limit,
        "a_burst_pps": args.a_limit * args.burst_factor,
        "burst_s": args.burst_s,
        "b_rate_pps": args.b_rate,
        "b_limit_pps": args.b_limit,
        "partitions": 1,
        "b_p50_ms_baseline": _p(e2e["baseline"], 50),
        "b_p99_ms_baseline": baseline_p99,
        "b_p99_ms_during_burst": _p(e2e["burst"], 99),
        "b_p99_ms_during_backlog": _p(e2e["backlog"], 99),
        "b_p99_ratio_burst_to_baseline": ratio("burst"),
        "b_p99_ratio_backlog_to_baseline": ratio("backlog"),
        "b_submit_to_routed_p99_ms": {phase: _p(to_router[phase], 99) for phase in reported},
        "b_throttle_wait_p99_ms": {phase: _p(waits[phase], 99) for phase in reported},
        "b_throttle_wait_max_ms": {
            phase: int(waits[phase].get_max_value()) for phase in reported
        },
        "b_deferred": b_deferred,
        "b_deferred_source": (
            f"blocked counters of tenant:tenant-b (router) + {b_route} (throttle) in the "
            "worker's metrics log"
        ),
        "b_tenant_lane_blocked": b_tenant_blocked,
        "b_route_lane_blocked": b_route_blocked,
        "b_messages": sum(1 for s in sent.values() if s.tenant == "tenant-b"),
        "b_lost": b_lost,
        "a_messages": a_count,
        "a_lost": a_lost,
        "a_lane_blocked": _blocked(counters, "tenant:tenant-a" if isolation == "tenant"
                                   else a_route),
        "a_drain_release_pps": drain_rate,
        "a_release_measured_at": "routed_at (router)" if isolation == "tenant"
        else "throttled_at (throttle)",
        "a_last_release_after_burst_end_s": (
            round(a_release[-1] - burst_end_epoch, 1) if a_release else None
        ),
        "a_expected_drain_s": round(phases["backlog"][1] - phases["backlog"][0], 1),
        "phases_s": {name: [round(a, 1), round(b, 1)] for name, (a, b) in phases.items()},
        "burst_start_s": base,
        "worker_fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return result


if __name__ == "__main__":
    raise SystemExit(main())
