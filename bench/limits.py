"""In-process benchmark of the rate-limit scheduler (smsflow.domain.limits): no Kafka, no I/O.

    python bench/limits.py --json --out bench/results/limits.json

Simulated time drives the scheduler the way the throttle agent will (offer each record, poll);
the wall clock only measures our CPU cost. Scenarios:

* ``throttle_flowing``: 20 routes with every limit on (global share, headroom, tiers, per-number
  anti-burst, AIMD) and offered load below capacity: each message is offered and polled on its
  own; the latency sample is ``offer + poll`` for that one message (the agent's per-record cost).
* ``throttle_saturated``: the same scheduler with a deep backlog on every route; polls at each
  ``next_wake_at`` release whatever the buckets allow; cost per released message.
* ``router_tenants``: the router placement: 2,000 tenant lanes with quotas, offered and polled
  per message.

The items of a scenario are built before the clock starts and then frozen out of the cyclic
GC's view (``gc.freeze``), as they stand for Kafka records, not for scheduler state; the
scheduler's own objects are collected as usual, so GC pauses show in ``max_us``.

A "decision" is one message through offer and release. ``decisions_per_s`` is messages / CPU
seconds of the loop; ``p50_us``/``p99_us`` are per message (per poll for the saturated case,
divided by the messages that poll released).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

from smsflow.config.models import Tier
from smsflow.domain.limits import (
    AimdParams,
    DestinationLimit,
    Item,
    RateLimit,
    Scheduler,
    SchedulerConfig,
    SubmitSample,
    TierPolicy,
)

ROUTES = [f"route-{i:02d}" for i in range(20)]
TIERS = [Tier.PREMIUM, Tier.STANDARD, Tier.ECONOMY]


def _throttle_config() -> SchedulerConfig:
    return SchedulerConfig(
        lanes={r: RateLimit(500.0, burst_s=1.0, headroom=0.2) for r in ROUTES},
        global_limit=RateLimit(20 * 500.0),
        destination=DestinationLimit(5, 60.0),
        tiers=TierPolicy(),
        adaptive=AimdParams(),
    )


def _items(
    n: int, rng: random.Random, rate: float, lanes: list[str], by_tenant: bool
) -> list[Item]:
    items = []
    for k in range(n):
        lane = rng.choice(lanes)
        items.append(
            Item(
                message_id=f"m{k}",
                tenant_id=lane if by_tenant else f"tenant-{rng.randrange(50)}",
                tier=rng.choice(TIERS),
                route_id=ROUTES[k % len(ROUTES)] if by_tenant else lane,
                destination=f"+4477{rng.randrange(10**8):08d}",
                parts=rng.choice((1, 1, 1, 2, 3)),
                enqueued_at=k / rate,
                partition=k % 12,
                offset=k // 12,
            )
        )
    return items


def _freeze() -> None:
    gc.collect()
    gc.freeze()


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(samples_ns: list[float], decisions: int, cpu_s: float) -> dict[str, float]:
    return {
        "decisions": decisions,
        "decisions_per_s": round(decisions / cpu_s),
        "p50_us": round(_percentile(samples_ns, 0.50) / 1000, 2),
        "p99_us": round(_percentile(samples_ns, 0.99) / 1000, 2),
        "max_us": round(max(samples_ns) / 1000, 2),
    }


def flowing(n: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    rate = 20 * 500.0 * 0.6  # 60% of capacity
    items = _items(n, rng, rate, ROUTES, by_tenant=False)
    _freeze()
    scheduler = Scheduler(_throttle_config(), 0.0)
    samples: list[float] = []
    released = 0
    clock = time.perf_counter_ns
    start = time.process_time()
    for k, item in enumerate(items):
        now = item.enqueued_at
        t0 = clock()
        scheduler.offer(item, now)
        released += len(scheduler.poll(now).released)
        samples.append(clock() - t0)
        if k % 50 == 0:  # submit outcomes flowing back (AIMD), as from sms.sent
            scheduler.observe(item.route_id, SubmitSample(0.05), now)
    cpu = time.process_time() - start
    result = _summary(samples, n, cpu)
    result["released_at_once_fraction"] = round(released / n, 4)
    return result


def saturated(n: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    items = _items(n, rng, 1e9, ROUTES, by_tenant=False)  # all offered at ~t=0
    _freeze()
    scheduler = Scheduler(_throttle_config(), 0.0)
    for item in items:
        scheduler.offer(item, 0.0)
    samples: list[float] = []
    released = 0
    clock = time.perf_counter_ns
    start = time.process_time()
    now: float | None = 0.0
    while now is not None:
        t0 = clock()
        result = scheduler.poll(now)
        spent = clock() - t0
        if result.released:
            samples.extend([spent / len(result.released)] * len(result.released))
        released += len(result.released)
        now = result.next_wake_at
    cpu = time.process_time() - start
    summary = _summary(samples, released, cpu)
    summary["simulated_s"] = round(scheduler.metrics(0.0).released_wait_max_s, 1)
    return summary


def router(n: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    tenants = [f"tenant-{i:04d}" for i in range(2000)]
    config = SchedulerConfig(
        lane_by="tenant",
        lanes={t: RateLimit(10.0) for t in tenants},
        daily_quota={t: 10**9 for t in tenants},
        tiers=TierPolicy(min_share={}),
    )
    items = _items(n, rng, 2000 * 10.0 * 0.5, tenants, by_tenant=True)
    _freeze()
    scheduler = Scheduler(config, 0.0)
    samples: list[float] = []
    clock = time.perf_counter_ns
    start = time.process_time()
    for item in items:
        now = item.enqueued_at
        t0 = clock()
        scheduler.offer(item, now)
        scheduler.poll(now)
        samples.append(clock() - t0)
    cpu = time.process_time() - start
    return _summary(samples, n, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()
    scenarios = {}
    for name, scenario in (
        ("throttle_flowing", flowing),
        ("throttle_saturated", saturated),
        ("router_tenants", router),
    ):
        scenarios[name] = scenario(args.messages, args.seed)
        gc.unfreeze()
        gc.collect()
    summary = {
        "messages_per_scenario": args.messages,
        "scenarios": scenarios,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(summary, indent=None if args.json else 2)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
