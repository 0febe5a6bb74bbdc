"""What the stack costs when no traffic flows: CPU of the broker, worker(s), sender and simulator.

    python bench/idle.py [--seconds 20] [--rounds 2] [--scenario NAME] [--json]

Starts the stack of ``bench/e2e.py`` (``config/bench-platform.yaml``, the simulator, one worker,
one sender) on the broker (``SMSFLOW_KAFKA_BOOTSTRAP``, or the local one), warms it up, lets it
settle, then reads ``/proc`` over ``--rounds`` windows of ``--seconds`` each with no traffic.
Also measures the broker alone for one window before the stack starts.

Why it exists: a consumer's fetch waits at most ``fetch.max.wait`` at the broker, so each
consumer comes back many times a second even when nothing arrives, and each response is
parsed. That cost is per second, not per message; bursts hide it and moderate rates pay it
in full. This measurement has far less noise than an end-to-end run, so it can judge levers
on fixed costs (docs/performance.md#follower-fetch-wait). Settings come from the environment
as for every process (e.g. ``SMSFLOW_FOLLOWER_FETCH_MAX_WAIT_MS=20``).

Result (the last stdout line with ``--json``, and ``bench/results/idle.json`` by scenario):
``percent_of_core`` per process (mean of the rounds), ``rounds`` (each window's figures),
``broker_alone``, with the commit, the machine and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path (bench/api.py would shadow the
# `api` package): take the directory out, put the repository in.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.e2e import _bootstrap, git_commit, machine, store_scenario  # noqa: E402
from smsflow.devstack.flowrun import warm_up  # noqa: E402
from smsflow.devstack.harness import (  # noqa: E402
    delete_run_topics,
    isolated_settings,
    prepared_stack,
)
from smsflow.devstack.stack import cpu_seconds  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "idle.json"


def percent_of_core(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Each process's CPU over the next ``seconds``, in % of one core."""
    before, started = cpu_seconds(pids), time.monotonic()
    time.sleep(seconds)
    after, elapsed = cpu_seconds(pids), time.monotonic() - started
    return {name: round(100 * (after[name] - before[name]) / elapsed, 1) for name in pids}


def measure(seconds: float, rounds: int, settle_s: float,
            platform_config: Path, sim_config: Path) -> dict[str, Any]:
    bootstrap, broker_pid = _bootstrap()
    if broker_pid is None:
        raise SystemExit("cannot find the broker's process: idle CPU needs its /proc entry")
    alone = percent_of_core({"broker": broker_pid}, seconds)["broker"]
    windows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="smsflow-idle-") as home:
        settings = isolated_settings(bootstrap, Path(home), "idle")
        with prepared_stack(settings, platform_config=platform_config,
                            sim_config=sim_config) as stack:
            warm_up(settings)
            time.sleep(settle_s)  # the warm-up's records and the start-up's reads die down
            pids = {**stack.pids(), "broker": broker_pid}
            for _ in range(rounds):
                windows.append(percent_of_core(pids, seconds))
            stack.check_alive()
    delete_run_topics(bootstrap)  # later runs on this broker must not carry this one's
    names = sorted(windows[0])
    return {
        "percent_of_core": {n: round(sum(w[n] for w in windows) / len(windows), 1)
                            for n in names},
        "rounds": windows,
        "broker_alone": alone,
        "seconds_per_round": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each window")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds between the warm-up and the first window")
    parser.add_argument("--platform-config", type=Path,
                        default=REPO / "config" / "bench-platform.yaml")
    parser.add_argument("--sim-config", type=Path, default=REPO / "config" / "bench-smsc-sim.yaml")
    parser.add_argument("--scenario", default="idle")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0:
        raise SystemExit("--rounds must be >= 1 and --seconds > 0")
    load_at_start = os.getloadavg()[0]
    result = measure(args.seconds, args.rounds, args.settle, args.platform_config,
                     args.sim_config)
    result.update(scenario=args.scenario, commit=git_commit(), machine=machine(load_at_start),
                  measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  settings={k: v for k, v in sorted(os.environ.items())
                            if k.startswith("SMSFLOW_") and "PASSWORD" not in k})
    store_scenario(args.out, args.scenario, result)
    if args.json:
        print(json.dumps(result))
    else:
        shares = ", ".join(f"{n} {p} %" for n, p in result["percent_of_core"].items())
        print(f"idle, % of one core: {shares} (broker alone {result['broker_alone']} %)")


if __name__ == "__main__":
    main()
