"""In-process benchmark of the delivery-tracking core (``smsflow.domain.tracking``).

Replays a synthetic stream (half submit outcomes, half terminal outcomes, timestamps jittered
up to 30 s out of order, the clock at ``--rate`` events/s) over ``--keys`` window keys and
times each operation the faust agents will run per event or per tick:

* ``window_step``: one event into a cached window (the state stays in memory);
* ``window_step_encode``: the same plus ``to_bytes()`` (a table write per event);
* ``window_decode_step_encode``: ``from_bytes()`` + step + ``to_bytes()`` (no cache);
* ``window_batch_100``: ``step_many`` of 100 events + one ``to_bytes()``, per event;
* ``health_evaluate``: ``stats()`` + ``evaluate()`` + ``publish_decision()`` for one busy route,
  after every event;
* ``health_state_codec``: ``HealthState.to_bytes()`` + ``from_bytes()``;
* ``timer_schedule`` / ``timer_pop``: the timer wheel with ``--timer-keys`` pending keys.

Each figure is ops/s over the whole run and p50/p99 of the per-operation time (µs), from the
best of ``--rounds`` runs by p99 (every round's p99 is kept): on a shared machine preemption
adds millisecond outliers to whatever happens to be running.

    python bench/tracking.py --json
    python bench/tracking.py --json --output bench/results/tracking.json
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from smsflow.domain.receipts import DeliveryStatus  # noqa: E402
from smsflow.domain.tracking import (  # noqa: E402
    ERROR_CATEGORIES,
    TERMINAL_STATUSES,
    HealthState,
    SubmitEvent,
    TerminalEvent,
    TimerWheel,
    WindowEvent,
    WindowState,
    evaluate,
    pending_sent,
    publish_decision,
    stats,
    step,
    step_many,
)

T0 = 1_700_000_000_000


def make_stream(n: int, keys: int, rate: float, seed: int) -> list[tuple[int, WindowEvent, int]]:
    """``(key index, event, now_ms)``: the clock advances at ``rate`` events/s."""
    rng = random.Random(seed)
    out: list[tuple[int, WindowEvent, int]] = []
    for i in range(n):
        now = T0 + int(i * 1000 / rate)
        ts = now - int(rng.random() * 30_000)
        event: WindowEvent
        if i % 2:
            accepted = rng.random() < 0.97
            event = SubmitEvent(
                ts, accepted, rng.lognormvariate(3.5, 0.8),
                None if accepted else rng.choice(ERROR_CATEGORIES),
            )
        else:
            status = (
                DeliveryStatus.DELIVERED if rng.random() < 0.92 else rng.choice(TERMINAL_STATUSES)
            )
            event = TerminalEvent(ts, status)
        out.append((rng.randrange(keys), event, now))
    return out


def summarise(samples_ns: list[int], ops_per_sample: int = 1) -> dict[str, float]:
    ordered = sorted(samples_ns)
    total_s = sum(ordered) / 1e9

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1e3 / ops_per_sample,
                     2)

    return {
        "ops_per_s": round(len(ordered) * ops_per_sample / total_s),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "samples": len(ordered),
    }


def timed(run: Callable[[], None]) -> int:
    start = time.perf_counter_ns()
    run()
    return time.perf_counter_ns() - start


def best_of(
    rounds: int, scenario: Callable[[], list[int]], ops_per_sample: int = 1
) -> dict[str, Any]:
    """Run ``scenario`` ``rounds`` times; keep the round with the lowest p99.

    On a shared box a preempted process shows up as millisecond outliers in every phase; the
    best round is the closest to the code's own cost, and every round's p99 is kept alongside.
    """
    runs = []
    for _ in range(rounds):
        gc.collect()
        runs.append(summarise(scenario(), ops_per_sample))
    best = min(runs, key=lambda r: r["p99_us"])
    return {**best, "p99_us_rounds": [r["p99_us"] for r in runs]}


def bench_windows(
    stream: list[tuple[int, WindowEvent, int]], keys: int, rounds: int
) -> dict[str, Any]:
    def cached_step() -> list[int]:
        states = [WindowState.empty() for _ in range(keys)]
        samples: list[int] = []
        for key, event, now in stream:
            t = time.perf_counter_ns()
            states[key] = step(states[key], event, now)
            samples.append(time.perf_counter_ns() - t)
        return samples

    def cached_step_encode() -> list[int]:
        states = [WindowState.empty() for _ in range(keys)]
        blobs = [s.to_bytes() for s in states]
        samples: list[int] = []
        for key, event, now in stream:
            t = time.perf_counter_ns()
            states[key] = step(states[key], event, now)
            blobs[key] = states[key].to_bytes()
            samples.append(time.perf_counter_ns() - t)
        return samples

    def decode_step_encode() -> list[int]:
        blobs = [WindowState.empty().to_bytes() for _ in range(keys)]
        samples: list[int] = []
        for key, event, now in stream:
            t = time.perf_counter_ns()
            blobs[key] = step(WindowState.from_bytes(blobs[key]), event, now).to_bytes()
            samples.append(time.perf_counter_ns() - t)
        return samples

    batch = 100
    final: list[WindowState] = []

    def batched() -> list[int]:
        states = [WindowState.empty() for _ in range(keys)]
        samples: list[int] = []
        for i in range(0, len(stream) - batch + 1, batch):
            chunk = stream[i : i + batch]
            key, now = chunk[0][0], chunk[-1][2]
            t = time.perf_counter_ns()
            states[key] = step_many(states[key], [e for _, e, _ in chunk], now)
            states[key].to_bytes()
            samples.append(time.perf_counter_ns() - t)
        final[:] = states
        return samples

    results: dict[str, Any] = {
        "window_step": best_of(rounds, cached_step),
        "window_step_encode": best_of(rounds, cached_step_encode),
        "window_decode_step_encode": best_of(rounds, decode_step_encode),
        f"window_batch_{batch}": best_of(rounds, batched, batch),
    }
    sizes = sorted(len(s.to_bytes()) for s in final)
    results["window_bytes"] = {
        "empty": len(WindowState.empty().to_bytes()),
        "median_key": sizes[len(sizes) // 2],
        "max_key": sizes[-1],
        "events_per_key_in_window": round(len(stream) / keys),
    }
    return results


def bench_health(
    stream: list[tuple[int, WindowEvent, int]], evaluations: int, rounds: int
) -> dict[str, Any]:
    """One busy route: every event of the stream goes into its window (untimed), and health is
    evaluated after each of ``evaluations`` events (timed)."""
    warm = len(stream) - evaluations
    published = 0

    def evaluations_run() -> list[int]:
        nonlocal published
        window = step_many(WindowState.empty(), [e for _, e, _ in stream[:warm]],
                           stream[warm - 1][2])
        state = HealthState.initial(stream[warm - 1][2])
        samples: list[int] = []
        published = 0
        for _, event, now in stream[warm:]:
            window = step(window, event, now)
            t = time.perf_counter_ns()
            figures = stats(window, now)
            state, report = evaluate(state, figures, "route-1", now)
            state, yes = publish_decision(state, report, now)
            samples.append(time.perf_counter_ns() - t)
            published += yes
        return samples

    result: dict[str, Any] = {"health_evaluate": best_of(rounds, evaluations_run)}
    result["health_evaluate"]["published"] = published

    state = HealthState.initial(T0)

    def codec_run() -> list[int]:
        samples: list[int] = []
        for _ in range(evaluations):
            t = time.perf_counter_ns()
            HealthState.from_bytes(state.to_bytes())
            samples.append(time.perf_counter_ns() - t)
        return samples

    result["health_state_codec"] = best_of(rounds, codec_run)
    result["health_state_bytes"] = len(state.to_bytes())
    return result


def bench_timers(keys: int, rounds: int) -> dict[str, Any]:
    rng = random.Random(7)
    dues = [T0 + rng.randrange(0, 2 * 3_600_000) for _ in range(keys)]  # within two hours
    names = [f"smsc-1:{i}" for i in range(keys)]
    wheels: list[TimerWheel] = []

    def schedule_run() -> list[int]:
        wheel = TimerWheel(tick_ms=1_000, slots=4_096, now_ms=T0)
        samples: list[int] = []
        for key, due in zip(names, dues, strict=True):
            t = time.perf_counter_ns()
            wheel.schedule(key, due)
            samples.append(time.perf_counter_ns() - t)
        wheels.append(wheel)
        return samples

    result: dict[str, Any] = {"timer_schedule": best_of(rounds, schedule_run)}

    pops = []
    for wheel in wheels:
        samples: list[int] = []
        popped = 0
        now = T0
        while len(wheel):
            now += 1_000  # a 1 s faust timer
            while True:
                t = time.perf_counter_ns()
                got = wheel.pop_due(now, 1_000)
                samples.append(time.perf_counter_ns() - t)
                popped += len(got)
                if not wheel.behind(now) and len(got) < 1_000:
                    break
        ordered = sorted(samples)
        pops.append({
            "keys_per_s": round(popped / (sum(ordered) / 1e9)),
            "p99_call_us": round(ordered[int(0.99 * len(ordered))] / 1e3, 2),
            "max_call_us": round(ordered[-1] / 1e3, 2),
            "calls": len(ordered),
            "limit": 1_000,
        })
    result["timer_pop"] = {
        **min(pops, key=lambda r: r["p99_call_us"]),
        "p99_call_us_rounds": [r["p99_call_us"] for r in pops],
    }
    entry = pending_sent(b"", sent_at_ms=T0, expires_at_ms=T0 + 86_400_000)
    result["pending_entry_header_bytes"] = len(entry.to_bytes())
    return result


def run(
    events: int, keys: int, rate: float, evaluations: int, timer_keys: int, rounds: int
) -> dict[str, Any]:
    stream = make_stream(events, keys, rate, seed=1)
    result: dict[str, Any] = {
        "events": events,
        "keys": keys,
        "clock_events_per_s": rate,
        "rounds": rounds,
    }
    result.update(bench_windows(stream, keys, rounds))
    result.update(bench_health(stream, evaluations, rounds))
    result.update(bench_timers(timer_keys, rounds))
    result["machine"] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    result["setup"] = (
        "single process, no I/O; per-operation times with perf_counter_ns; "
        "default WindowSpec (15 x 60 s buckets, 29 latency bins), default policies"
    )
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10, help="window keys (routes)")
    parser.add_argument("--rate", type=float, default=100.0, help="clock: events per second")
    parser.add_argument("--evaluations", type=int, default=20_000)
    parser.add_argument("--timer-keys", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure; best p99 kept")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--output", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)
    result = run(args.events, args.keys, args.rate, args.evaluations, args.timer_keys,
                 args.rounds)
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    else:
        for name in ("window_step", "window_step_encode", "window_decode_step_encode",
                     "window_batch_100", "health_evaluate", "timer_schedule"):
            r = result[name]
            print(f"{name:28} {r['ops_per_s']:>9,}/s  p50 {r['p50_us']:>7} µs  "
                  f"p99 {r['p99_us']:>7} µs")
        print(f"timer_pop {result['timer_pop']}")
        print(f"window bytes {result['window_bytes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
