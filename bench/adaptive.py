"""Adaptive throttling: one operator's SMSC slows down; its route's rate falls, then recovers.

    python bench/adaptive.py --json --out bench/results/adaptive.json

A real stack (local broker, one faust worker, the SMPP sender) with the SMSC simulator running
in this process (``SimulatorThread``), so its knobs can change while traffic flows. Three
routes on three SMSC accounts (uk, de, us), each offered a steady ``--rate`` below its ``--tps``.
At ``--slow-at`` the simulator's ``de`` profile answers ``submit_sm`` after ``--slow-latency-ms``
instead of 5 ms; at ``--recover-at`` it is fast again.

What should happen (AIMD, docs/rate-limits.md): the sender reports each submit's latency on
``sms.sent``; every worker reads it (no consumer group) and the throttle owning route ``de`` cuts
its rate in proportion (at most by half per round trip) while the smoothed latency is over the
route's target, down to 5% of tps; the other routes keep their rate. When latency recovers, the
rate grows by 5% of tps per second back to tps, and the backlog built meanwhile drains.

Printed (and saved): per second, each route's release rate (records on ``sms.throttled`` by
``throttled_at``), route de's backlog in the throttle (routed minus released) and its median
submit latency (``sms.sent``); and a summary: how fast the rate fell and recovered, its minimum,
the largest backlog, and the other routes' rates and throttle waits before and during the slow
period.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, KafkaError

from connectors.producer import SmsProducer, new_request
from connectors.smsc_sim.config import load_config
from connectors.smsc_sim.thread import SimulatorThread
from schemas.batches import sent_values
from schemas.models import RoutedMessage, SubmitOutcome
from smsflow.devstack.flowrun import run_flow
from smsflow.devstack.harness import free_port, isolated_settings, prepared_stack
from smsflow.devstack.stack import ManagedProcess
from smsflow.settings import Settings
from smsflow.topics import SENT, SUBMITTED, THROTTLED, topic_name

REPO = Path(__file__).resolve().parents[1]
SIM_CONFIG = REPO / "config" / "demo-smsc-sim.yaml"
#: route → (destination prefix, total length with '+'): valid mobile numbers per operator.
ROUTES = {
    "uk": ("+447701", 13),  # gb-vodafone, smsc-uk, simulator profile uk
    "de": ("+4915112", 14),  # de-telekom, smsc-de, simulator profile de
    "us": ("+1206555", 12),  # us-tmobile, smsc-us, simulator profile us
}
SLOW_ROUTE, SLOW_PROFILE = "de", "de"


def _bootstrap() -> str:
    if os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP"):
        return os.environ["SMSFLOW_KAFKA_BOOTSTRAP"]
    from smsflow.devstack.broker import LocalBroker

    return LocalBroker.from_env(home=REPO / ".smsflow").start()


def platform_config(tps: float, target_ms: float) -> dict[str, Any]:
    def operator(op_id: str, country: str, mcc_mnc: str, prefix: str) -> dict[str, Any]:
        return {"id": op_id, "name": op_id, "country": country, "mcc_mnc": mcc_mnc,
                "prefixes": [prefix]}

    def smsc(smsc_id: str, password: str, region: str) -> dict[str, Any]:
        return {"id": smsc_id, "host": "127.0.0.1", "port": 2775, "system_id": smsc_id,
                "password": password, "region": region, "binds": 1, "window": 64}

    def route(route_id: str, smsc_id: str, op_id: str) -> dict[str, Any]:
        return {"id": route_id, "smsc": smsc_id, "operators": [op_id], "tps": tps,
                "headroom": 0, "cost": 0.01, "target_latency_ms": target_ms}

    return {
        "tenants": [{"id": "tenant-a", "name": "A", "tier": "standard",
                     "rate_limit_pps": 10000}],
        "operators": [
            operator("gb-vodafone", "GB", "23415", "+447701"),
            operator("de-telekom", "DE", "26201", "+49151"),
            operator("us-tmobile", "US", "310260", "+1206"),
        ],
        "smscs": [smsc("smsc-uk", "uk-pass", "eu-west"), smsc("smsc-de", "de-pass", "eu-central"),
                  smsc("smsc-us", "us-pass", "us-west")],
        "routes": [route("uk", "smsc-uk", "gb-vodafone"), route("de", "smsc-de", "de-telekom"),
                   route("us", "smsc-us", "us-tmobile")],
    }


def _read(settings: Settings, name: str) -> list[tuple[bytes, float]]:
    """Every record of a topic: (value, Kafka timestamp in s)."""
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap, "group.id": f"adaptive-{uuid.uuid4()}",
        "auto.offset.reset": "earliest", "enable.partition.eof": True,
    })
    topic = topic_name(settings, name)
    consumer.subscribe([topic])
    partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    eof: set[int] = set()
    out: list[tuple[bytes, float]] = []
    while len(eof) < partitions:
        message = consumer.poll(10)
        if message is None:
            break
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                eof.add(message.partition() or 0)
            continue
        out.append((message.value() or b"", message.timestamp()[1] / 1000.0))
    consumer.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tps", type=float, default=50.0, help="every route's tps")
    parser.add_argument("--rate", type=float, default=30.0, help="offered msg/s per route")
    parser.add_argument("--target-ms", type=float, default=500.0, help="routes' latency target")
    parser.add_argument("--settle-s", type=float, default=10.0)
    parser.add_argument("--slow-at", type=float, default=30.0, help="s after traffic starts")
    parser.add_argument("--recover-at", type=float, default=50.0)
    parser.add_argument("--traffic-s", type=float, default=90.0)
    parser.add_argument("--slow-latency-ms", type=float, default=1500.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()

    def say(*parts: object) -> None:
        if not args.json:
            print(*parts, flush=True)

    sim_config = load_config(SIM_CONFIG)
    normal_latency = sim_config.profiles[SLOW_PROFILE].submit_latency_ms
    with tempfile.TemporaryDirectory(prefix="smsflow-adaptive-") as tmp:
        home = Path(tmp)
        settings = isolated_settings(_bootstrap(), home, "adaptive", partitions=1)
        config_path = home / "platform.yaml"
        config_path.write_text(yaml.safe_dump(platform_config(args.tps, args.target_ms)))
        port = free_port()
        sim = SimulatorThread(sim_config, port=port).start()
        stack = prepared_stack(settings, platform_config=config_path,
                               sim_config=SIM_CONFIG, sim_port=port)
        logs = home / "logs"
        try:
            for name, argv in (("worker-0", ["worker", "--loglevel", "info"]),
                               ("sender", ["sender"])):
                process = ManagedProcess(name, [sys.executable, "-m", "smsflow.cli", *argv],
                                         logs / f"{name}.log")
                process.start(stack.env)
                stack.processes.append(process)
            prefix, length = ROUTES["uk"]
            probe = new_request("tenant-a", prefix + "9" * (length - len(prefix)), "warm-up")
            if run_flow(settings, [probe], timeout_s=120).lost:
                raise TimeoutError("the stack did not complete a probe message")
            say("stack up")
            started, knobs = _drive(settings, sim, args, normal_latency, say)
            time.sleep(5)
            stack.check_alive()
            throttled = _read(settings, THROTTLED)
            sent = _read(settings, SENT)
            rates_logged = _logged_rates(logs / "worker-0.log")
        finally:
            stack.stop()
            sim.stop()
    result = _summarize(args, started, knobs, throttled, sent, rates_logged, probe.message_id)
    text = json.dumps(result, indent=2)
    if args.json:
        print(text)
    else:
        _chart(result, say)
        print(json.dumps(result["summary"], indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


def _drive(
    settings: Settings, sim: SimulatorThread, args: argparse.Namespace, normal_latency: float,
    say: Any,
) -> tuple[float, dict[str, float]]:
    producer = SmsProducer(settings.kafka_bootstrap, topic_name(settings, SUBMITTED))
    events = sorted(
        (i / args.rate + k * 0.01, route)
        for k, route in enumerate(ROUTES)
        for i in range(int(args.traffic_s * args.rate))
    )
    start = time.monotonic()
    started = time.time()
    knobs: dict[str, float] = {}
    counters = dict.fromkeys(ROUTES, 0)
    for offset, route in events:
        delay = start + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if "slow_at" not in knobs and offset >= args.slow_at:
            sim.set_profile(SLOW_PROFILE, submit_latency_ms=args.slow_latency_ms)
            knobs["slow_at"] = time.time() - started
            say(f"t={knobs['slow_at']:.1f}s: {SLOW_PROFILE} answers after "
                f"{args.slow_latency_ms:.0f} ms")
        if "recover_at" not in knobs and offset >= args.recover_at:
            sim.set_profile(SLOW_PROFILE, submit_latency_ms=normal_latency)
            knobs["recover_at"] = time.time() - started
            say(f"t={knobs['recover_at']:.1f}s: {SLOW_PROFILE} back to {normal_latency:.0f} ms")
        prefix, length = ROUTES[route]
        counters[route] += 1
        number = f"{prefix}{counters[route]:0{length - len(prefix)}d}"
        producer.submit(new_request("tenant-a", number, f"{route} {counters[route]}",
                                    now=datetime.now(UTC)))
    if producer.flush(60) != 0 or producer.failed:
        raise RuntimeError("Kafka did not acknowledge every message")
    say(f"produced {len(events)}; waiting for the backlog to drain")
    # Wait until route de's backlog drained (everything produced is on sms.throttled).
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if len(_read(settings, THROTTLED)) >= len(events):
            break
        time.sleep(5)
    return started, knobs


def _logged_rates(log_path: Path) -> list[tuple[str, str, float]]:
    """(time, route, adaptive rate) from the worker's metrics lines (every 10 s)."""
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        if "throttle: route:" in line and " rate=" in line:
            stamp = line[1:24]
            route = line.split("throttle: route:", 1)[1].split()[0]
            rate = line.rsplit(" rate=", 1)[1].split()[0]
            try:
                out.append((stamp, route, float(rate)))
            except ValueError:
                continue
    return out


def _summarize(
    args: argparse.Namespace, started: float, knobs: dict[str, float],
    throttled: list[tuple[bytes, float]], sent: list[tuple[bytes, float]],
    rates_logged: list[tuple[str, str, float]], probe_id: str,
) -> dict[str, Any]:
    released: dict[str, list[float]] = defaultdict(list)
    routed: dict[str, list[float]] = defaultdict(list)
    waits: dict[str, list[tuple[float, float]]] = defaultdict(list)
    seen: set[str] = set()
    for value, _ in throttled:
        message = RoutedMessage.from_avro(value)
        if message.request.message_id in seen or message.throttled_at is None:
            continue
        seen.add(message.request.message_id)
        if message.request.message_id == probe_id:
            continue
        t_rel = message.throttled_at.timestamp() - started
        released[message.route_id].append(t_rel)
        routed[message.route_id].append(message.routed_at.timestamp() - started)
        waits[message.route_id].append(
            (t_rel, (message.throttled_at - message.routed_at).total_seconds())
        )
    latency: dict[int, list[float]] = defaultdict(list)
    outcomes = (SubmitOutcome.from_avro(value) for record, _ in sent
                for value in sent_values(record))  # one outcome, or each of a batch's
    for outcome in outcomes:
        if outcome.route_id == SLOW_ROUTE:
            latency[int(outcome.sent_at.timestamp() - started)].append(outcome.latency_ms)
    end = int(max((max(v) for v in released.values() if v), default=0.0)) + 1
    series = []
    for second in range(0, end):
        row: dict[str, Any] = {"t": second}
        for route in ROUTES:
            row[f"{route}_pps"] = sum(1 for t in released[route] if second <= t < second + 1)
        row[f"{SLOW_ROUTE}_backlog"] = (
            sum(1 for t in routed[SLOW_ROUTE] if t < second + 1)
            - sum(1 for t in released[SLOW_ROUTE] if t < second + 1)
        )
        samples = latency.get(second)
        row[f"{SLOW_ROUTE}_latency_ms_p50"] = (
            round(statistics.median(samples), 1) if samples else None
        )
        series.append(row)

    slow_at = knobs.get("slow_at", args.slow_at)
    recover_at = knobs.get("recover_at", args.recover_at)

    def mean_rate(route: str, start: float, stop: float) -> float:
        rows = [r[f"{route}_pps"] for r in series if start <= r["t"] < stop]
        return round(statistics.mean(rows), 1) if rows else 0.0

    def wait_p99(route: str, start: float, stop: float) -> float | None:
        values = sorted(w for t, w in waits[route] if start <= t < stop)
        return round(values[int(0.99 * (len(values) - 1))] * 1000, 1) if values else None

    baseline = (args.settle_s, slow_at)
    slow_rows = [r for r in series if slow_at <= r["t"] < recover_at]
    fell = next(
        (r["t"] for r in slow_rows if r[f"{SLOW_ROUTE}_pps"] <= 0.5 * args.rate), None
    )
    after = [r for r in series if r["t"] >= recover_at]
    recovered = next(
        (r["t"] for r in after if r[f"{SLOW_ROUTE}_pps"] >= 0.9 * args.rate), None
    )
    drained = next((r["t"] for r in after if r[f"{SLOW_ROUTE}_backlog"] <= 1), None)
    summary: dict[str, Any] = {
        "slow_route": SLOW_ROUTE,
        "tps": args.tps,
        "offered_pps_per_route": args.rate,
        "target_latency_ms": args.target_ms,
        "slow_latency_ms": args.slow_latency_ms,
        "slow_at_s": round(slow_at, 1),
        "recover_at_s": round(recover_at, 1),
        f"{SLOW_ROUTE}_pps_baseline": mean_rate(SLOW_ROUTE, *baseline),
        f"{SLOW_ROUTE}_pps_min_while_slow": min(
            (r[f"{SLOW_ROUTE}_pps"] for r in slow_rows), default=None
        ),
        f"{SLOW_ROUTE}_pps_mean_while_slow": mean_rate(SLOW_ROUTE, slow_at, recover_at),
        "fell_below_half_after_s": None if fell is None else round(fell - slow_at, 1),
        "recovered_to_90pct_of_offered_after_s": (
            None if recovered is None else round(recovered - recover_at, 1)
        ),
        "backlog_drained_after_s": None if drained is None else round(drained - recover_at, 1),
        f"{SLOW_ROUTE}_max_backlog": max((r[f"{SLOW_ROUTE}_backlog"] for r in series), default=0),
        "released": {route: len(released[route]) for route in ROUTES},
        "offered": {route: int(args.traffic_s * args.rate) for route in ROUTES},
    }
    for route in ROUTES:
        if route == SLOW_ROUTE:
            continue
        summary[f"{route}_pps_baseline"] = mean_rate(route, *baseline)
        summary[f"{route}_pps_while_slow"] = mean_rate(route, slow_at, recover_at)
        summary[f"{route}_throttle_wait_p99_ms_baseline"] = wait_p99(route, *baseline)
        summary[f"{route}_throttle_wait_p99_ms_while_slow"] = wait_p99(route, slow_at, recover_at)
    return {
        "summary": summary,
        "series": series,
        "adaptive_rate_logged": [
            {"at": stamp, "route": route, "rate_pps": rate} for stamp, route, rate in rates_logged
        ],
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _chart(result: dict[str, Any], say: Any) -> None:
    say(f"\n  t  {'uk':>4} {'de':>4} {'us':>4}  de backlog  de latency p50   de rate")
    for row in result["series"]:
        bar = "#" * int(row["de_pps"])
        latency = row["de_latency_ms_p50"]
        say(f"{row['t']:3d}  {row['uk_pps']:4d} {row['de_pps']:4d} {row['us_pps']:4d}  "
            f"{row['de_backlog']:10d}  {'' if latency is None else f'{latency:8.0f} ms':>14}   "
            f"{bar}")


if __name__ == "__main__":
    raise SystemExit(main())
