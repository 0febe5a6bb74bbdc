"""Enforcement: each limit level holds its measured rate to its limit, on the real stack.

    python bench/enforcement.py --json --out bench/results/enforcement.json

A real stack (local broker, one faust worker, the SMPP sender, the SMSC simulator) on isolated
topics with one partition. Traffic is offered above each limit and the release times are read
back from ``sms.throttled``: ``routed_at`` (the router's tenant lane released it) and
``throttled_at`` (the throttle released it). Two phases, the second configured live:

1. **tenant**, **route** and **destination** at once, on separate tenants, routes and numbers
   (so no level holds another level's traffic):

   * tenant: ``t-tenant`` at ``--rate`` parts/s, on a route far above it, offered 1.5x;
   * route: route ``de-metered`` at ``--rate`` tps, its tenant far above it, offered 1.5x;
   * destination: ``per_destination_per_minute`` = ``--per-number``, ``--numbers`` numbers each
     offered twice that for 60 s.

2. **global**: ``limits.global_pps`` = ``--global-pps`` (this one worker owns the only
   partition, so its share is all of it), two open routes offered 1.5x between them.

Rates are measured over sliding 10 s windows (1 s steps) from one second after a level's first
release (its bucket starts full: one second's worth may go at once) to its last release, while
its backlog lasts. The destination limit is a sliding **minute**, so it is measured per number:
the time from each release to the N-th next one (N = ``--per-number``) is 60 s for a
backlogged number, never less (see :func:`destination_report`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, KafkaError

from connectors.producer import SmsProducer, new_request
from schemas.models import RoutedMessage
from smsflow.config.kafka_io import apply_config
from smsflow.config.models import PlatformConfig
from smsflow.devstack.flowrun import warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack
from smsflow.settings import Settings
from smsflow.topics import CONFIG, SUBMITTED, THROTTLED, topic_name

REPO = Path(__file__).resolve().parents[1]
SIM_CONFIG = REPO / "config" / "demo-smsc-sim.yaml"
OFFER_FACTOR = 1.5
WINDOW_S = 10.0

# Prefix → total length with '+': valid mobile numbers (the router checks them).
TENANT_PREFIX = ("+447700", 13)  # gb-ee → uk-open
ROUTE_PREFIX = ("+4915112", 14)  # de-telekom → de-metered
DEST_PREFIX = ("+1206555", 12)  # us-tmobile → us-open
GLOBAL_PREFIXES = (("+447701", 13), ("+4916212", 13))  # uk-open, de-open


def _bootstrap() -> str:
    if os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP"):
        return os.environ["SMSFLOW_KAFKA_BOOTSTRAP"]
    from smsflow.devstack.broker import LocalBroker

    return LocalBroker.from_env(home=REPO / ".smsflow").start()


def platform_config(rate: float, per_number: int, global_pps: float | None) -> dict[str, Any]:
    open_pps = 10_000.0
    limits: dict[str, Any] = {"per_destination_per_minute": per_number}
    if global_pps is not None:
        limits["global_pps"] = global_pps
    return {
        "tenants": [
            {"id": "acme-bank", "name": "Acme", "tier": "premium", "rate_limit_pps": open_pps},
            {"id": "t-tenant", "name": "Tenant level", "tier": "standard",
             "rate_limit_pps": rate},
            {"id": "t-open", "name": "Unlimited", "tier": "standard",
             "rate_limit_pps": open_pps},
        ],
        "operators": [
            {"id": "gb-ee", "name": "EE", "country": "GB", "mcc_mnc": "23430",
             "prefixes": ["+44740", "+44741", "+447700"]},
            {"id": "gb-vodafone", "name": "Vodafone UK", "country": "GB", "mcc_mnc": "23415",
             "prefixes": ["+44770", "+44771", "+447701"]},
            {"id": "de-telekom", "name": "Telekom DE", "country": "DE", "mcc_mnc": "26201",
             "prefixes": ["+49151", "+49160", "+49170"]},
            {"id": "de-vodafone", "name": "Vodafone DE", "country": "DE", "mcc_mnc": "26202",
             "prefixes": ["+49152", "+49162", "+49172"]},
            {"id": "us-tmobile", "name": "T-Mobile US", "country": "US", "mcc_mnc": "310260",
             "prefixes": ["+1206", "+1425"]},
        ],
        "smscs": [
            {"id": "smsc-uk", "host": "127.0.0.1", "port": 2775, "system_id": "smsc-uk",
             "password": "uk-pass", "region": "eu-west", "binds": 2, "window": 64},
            {"id": "smsc-de", "host": "127.0.0.1", "port": 2775, "system_id": "smsc-de",
             "password": "de-pass", "region": "eu-central", "binds": 1, "window": 64},
            {"id": "smsc-us", "host": "127.0.0.1", "port": 2775, "system_id": "smsc-us",
             "password": "us-pass", "region": "us-west", "binds": 1, "window": 64},
        ],
        "routes": [
            {"id": "uk-open", "smsc": "smsc-uk", "operators": ["gb-ee", "gb-vodafone"],
             "tps": 2000, "headroom": 0, "cost": 0.01},
            {"id": "de-metered", "smsc": "smsc-de", "operators": ["de-telekom"], "tps": rate,
             "headroom": 0, "cost": 0.01},
            {"id": "de-open", "smsc": "smsc-de", "operators": ["de-vodafone"], "tps": 2000,
             "headroom": 0, "cost": 0.01},
            {"id": "us-open", "smsc": "smsc-us", "operators": ["us-tmobile"], "tps": 2000,
             "headroom": 0, "cost": 0.01},
        ],
        "limits": limits,
    }


Event = tuple[float, str, str, str]  # (offset s, level, tenant, destination)


def _number(prefix: tuple[str, int], n: int) -> str:
    head, length = prefix
    width = length - len(head)
    return f"{head}{n % 10**width:0{width}d}"


def phase_one(rate: float, per_number: int, numbers: int, duration_s: float) -> list[Event]:
    offered = rate * OFFER_FACTOR
    events: list[Event] = []
    count = int(offered * duration_s)
    for i in range(count):  # every message to its own number: only the level's limit applies
        events.append((i / offered, "tenant", "t-tenant", _number(TENANT_PREFIX, i)))
        events.append((i / offered, "route", "t-open", _number(ROUTE_PREFIX, i)))
    per_s = 2 * per_number / 60.0  # each number offered twice its limit
    for k in range(numbers):
        stagger = k / numbers / per_s
        for j in range(int(60.0 * per_s)):
            events.append((stagger + j / per_s, "destination", "t-open",
                           _number(DEST_PREFIX, 900_000 + k)))
    events.sort()
    return events


def phase_two(global_pps: float, duration_s: float) -> list[Event]:
    offered = global_pps * OFFER_FACTOR
    step = 2.0 / offered  # two streams, one per open route
    events: list[Event] = []
    for i in range(int(offered * duration_s / 2)):
        for k, prefix in enumerate(GLOBAL_PREFIXES):
            events.append((i * step + k * step / 2, "global", "t-open",
                           _number(prefix, 500_000 + i)))
    return events


def drive(settings: Settings, events: list[Event]) -> dict[str, tuple[str, str]]:
    """Produce ``events`` on their schedule; ``message_id → (level, destination)``."""
    producer = SmsProducer(settings.kafka_bootstrap, topic_name(settings, SUBMITTED))
    ids: dict[str, tuple[str, str]] = {}
    start = time.monotonic()
    for offset, level, tenant, destination in events:
        delay = start + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        request = new_request(tenant, destination, f"{level} check", now=datetime.now(UTC))
        ids[request.message_id] = (level, destination)
        producer.submit(request)
    if producer.flush(60) != 0 or producer.failed:
        raise RuntimeError("Kafka did not acknowledge every message")
    return ids


Released = dict[str, tuple[float, float]]  # message_id → (routed_at, throttled_at) in s


def collect(settings: Settings, ids: set[str], timeout_s: float) -> Released:
    """Read ``sms.throttled`` until every id is there (or the timeout)."""
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap, "group.id": f"enf-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic_name(settings, THROTTLED)])
    found: Released = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < len(ids) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(str(error))
                continue
            routed = RoutedMessage.from_avro(message.value())
            message_id = routed.request.message_id
            if message_id in ids and message_id not in found and routed.throttled_at:
                found[message_id] = (routed.routed_at.timestamp(),
                                     routed.throttled_at.timestamp())
    finally:
        consumer.close()
    return found


def window_rates(times: list[float], width: float = WINDOW_S, step: float = 1.0) -> list[float]:
    """Rates in every ``[s, s + width)`` from one second after the first release to the last."""
    times = sorted(times)
    if len(times) < 2:
        return []
    rates = []
    s = times[0] + 1.0
    lo = hi = 0
    while s + width <= times[-1]:
        while lo < len(times) and times[lo] < s:
            lo += 1
        while hi < len(times) and times[hi] < s + width:
            hi += 1
        rates.append(round((hi - lo) / width, 2))
        s += step
    return rates


def rate_report(level: str, limit: float, times: list[float], offered: int,
                measured_at: str) -> dict[str, Any]:
    rates = window_rates(times)
    deviation = max((abs(r - limit) / limit for r in rates), default=None)
    return {
        "level": level,
        "limit_pps": limit,
        "offered_pps": round(limit * OFFER_FACTOR, 2),
        "messages": offered,
        "released": len(times),
        "measured_at": measured_at,
        "windows": len(rates),
        "window_rates_pps": rates,
        "min_pps": min(rates, default=None),
        "max_pps": max(rates, default=None),
        "max_deviation_pct": None if deviation is None else round(100 * deviation, 2),
        "within_5pct": deviation is not None and deviation <= 0.05,
    }


def destination_report(per_number: int, numbers: int, times_by_number: dict[str, list[float]],
                       offered: int) -> dict[str, Any]:
    """Per number, the time from each release to the ``per_number``-th next one.

    A sliding-window cap of N per 60 s lets a release come no sooner than 60 s after the
    release N before it; a backlogged number (every number here after its first N) should get
    exactly that, so each such gap measures the number's rate: N per gap seconds. Also reported:
    the most releases any 60 s window of any number holds (never above N) and the counts of
    sliding 60 s windows (1 s steps) while backlogged.
    """
    gaps: list[float] = []
    counts: list[int] = []
    worst_any_window = 0
    for times in times_by_number.values():
        times.sort()
        gaps.extend(times[i + per_number] - times[i] for i in range(len(times) - per_number))
        for i, t in enumerate(times):
            worst_any_window = max(worst_any_window, sum(1 for u in times[i:] if u < t + 60.0))
        s = times[0]
        while s + 60.0 <= times[-1]:
            counts.append(sum(1 for u in times if s <= u < s + 60.0))
            s += 1.0
    deviation = max((abs(60.0 / gap - 1.0) for gap in gaps), default=None)
    return {
        "level": "destination",
        "limit": f"{per_number} parts per number per sliding 60 s",
        "numbers": numbers,
        "offered_per_number_per_minute": 2 * per_number,
        "messages": offered,
        "released": sum(len(t) for t in times_by_number.values()),
        "measured_at": "throttled_at",
        "gaps_measured": len(gaps),
        "gap_to_nth_next_release_min_s": round(min(gaps), 3) if gaps else None,
        "gap_to_nth_next_release_max_s": round(max(gaps), 3) if gaps else None,
        "max_in_any_60s_window": worst_any_window,
        "window_counts_min": min(counts, default=None),
        "window_counts_max": max(counts, default=None),
        "window_counts_note": (
            "informational; the gaps are the measure. Releases are paced from the first, so 1 s "
            "window steps start within milliseconds of releases: a window starting just after "
            "one release ends just before the N-th next (60 s plus a few ms later) and holds N-1"
        ),
        "max_deviation_pct": None if deviation is None else round(100 * deviation, 2),
        "within_5pct": deviation is not None and deviation <= 0.05,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=30.0, help="tenant and route limits")
    parser.add_argument("--global-pps", type=float, default=40.0)
    parser.add_argument("--per-number", type=int, default=3, help="per_destination_per_minute")
    parser.add_argument("--numbers", type=int, default=20)
    parser.add_argument("--duration-s", type=float, default=30.0,
                        help="how long tenant, route and global traffic is offered")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()
    say: Callable[..., None] = (lambda *_: None) if args.json else print
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="smsflow-enforcement-") as tmp:
        home = Path(tmp)
        settings = isolated_settings(_bootstrap(), home, "enforcement", partitions=1)
        config_path = home / "platform.yaml"
        config_path.write_text(yaml.safe_dump(platform_config(args.rate, args.per_number, None)))
        with prepared_stack(
            settings, platform_config=config_path, sim_config=SIM_CONFIG
        ) as stack:
            warm_up(settings, timeout_s=120)
            first = phase_one(args.rate, args.per_number, args.numbers, args.duration_s)
            say(f"phase 1 (tenant, route, destination): {len(first)} messages")
            ids_one = drive(settings, first)
            found_one = collect(settings, set(ids_one), timeout_s=120)
            say(f"phase 1 released {len(found_one)} of {len(ids_one)}; phase 2 (global)")
            live = PlatformConfig.model_validate(
                platform_config(args.rate, args.per_number, args.global_pps)
            )
            live = live.model_copy(update={"smscs": tuple(
                s.model_copy(update={"port": stack.sim_port}) for s in live.smscs
            )})
            apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG), live)
            time.sleep(3.0)  # the worker's watcher folds the change in (well under a second)
            second = phase_two(args.global_pps, args.duration_s)
            ids_two = drive(settings, second)
            found_two = collect(settings, set(ids_two), timeout_s=120)
            stack.check_alive()
    levels: dict[str, list[float]] = defaultdict(list)
    by_number: dict[str, list[float]] = defaultdict(list)
    offered: dict[str, int] = defaultdict(int)
    for ids, found in ((ids_one, found_one), (ids_two, found_two)):
        for message_id, (level, destination) in ids.items():
            offered[level] += 1
            stamps = found.get(message_id)
            if stamps is None:
                continue
            routed_at, throttled_at = stamps
            if level == "tenant":
                levels["tenant"].append(routed_at)
                levels["tenant_throttled"].append(throttled_at)
            elif level == "destination":
                by_number[destination].append(throttled_at)
            else:
                levels[level].append(throttled_at)
    tenant = rate_report("tenant", args.rate, levels["tenant"], offered["tenant"],
                         "routed_at (router release)")
    tenant["throttled_at_max_deviation_pct"] = rate_report(
        "tenant", args.rate, levels["tenant_throttled"], offered["tenant"], "throttled_at"
    )["max_deviation_pct"]
    result: dict[str, Any] = {
        "levels": {
            "tenant": tenant,
            "route": rate_report("route", args.rate, levels["route"], offered["route"],
                                 "throttled_at"),
            "global": rate_report("global", args.global_pps, levels["global"],
                                  offered["global"], "throttled_at"),
            "destination": destination_report(args.per_number, args.numbers, by_number,
                                              offered["destination"]),
        },
        "lost": sum(offered.values()) - len(found_one) - len(found_two),
        "window_s": WINDOW_S,
        "partitions": 1,
        "runtime_s": round(time.monotonic() - started, 1),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result["all_within_5pct"] = all(level["within_5pct"] for level in result["levels"].values())
    text = json.dumps(result, indent=2)
    print(text if args.json else f"\n{text}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
