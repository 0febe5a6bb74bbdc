"""Interleaved A/B of API server variants, without the pipeline: server CPU per request.

    python bench/api_ab.py --json --scenario front-vs-uvloop --variants '[
      {"name": "asyncio", "args": ["--event-loop", "asyncio"]},
      {"name": "uvloop", "args": ["--event-loop", "uvloop"]},
      {"name": "parent", "commit": "HEAD~1", "args": ["--event-loop", "asyncio"]}]'

bench/api.py measures the API in front of the whole stack, on a machine shared with other
work: its rates and even its CPU per request move with whatever else runs. This harness is for
comparing server-level levers (event loop, HTTP server, middleware) against each other: every
variant is one ``smsflow api --role submit`` process (its code from ``commit``, archived to a
temporary directory, or this working tree; ``pythonpath`` is appended, e.g. a ``--target``
install of a candidate package), all started at once on one broker with their own topics,
then the load (a separate process: ``wrk`` for single POSTs when it is installed, as in
bench/api.py, else bench/api_load.py) visits them in turn, ``--rounds`` times,
so that a change in the machine's load hits every variant alike. Server CPU per request is read
from /proc for each variant's process group. Nothing is produced beyond ``sms.submitted`` (no
worker runs), so the figures are the API's own cost, not the platform's throughput.
Results by scenario in bench/results/api_ab.json, with commit, load averages and medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.api import load_wrk, wrk_chosen  # noqa: E402
from bench.e2e import _bootstrap, git_commit, machine, store_scenario  # noqa: E402
from smsflow.devstack.flowrun import percentile  # noqa: E402
from smsflow.devstack.harness import free_port  # noqa: E402
from smsflow.devstack.lifeline import tied_env  # noqa: E402
from smsflow.devstack.stack import cpu_seconds, wait_for_port  # noqa: E402

REPO = _HERE.parent
LOAD = _HERE / "api_load.py"
RESULTS = REPO / "bench" / "results" / "api_ab.json"
PEPPER = "api-ab-pepper-0123456789abcdef"


def _code(variant: dict[str, Any], tmp: Path) -> Path:
    commit = variant.get("commit")
    if commit is None:
        return REPO
    target: Path = tmp / str(variant["name"])
    target.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "xf", "-"], cwd=target, input=archive, check=True)
    return target


def _smsflow(code: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "smsflow.cli", *args], cwd=code, env=env,
                          capture_output=True, text=True, check=True)
    return done.stdout


def _wait_ready(port: int, timeout_s: float = 120.0) -> None:
    wait_for_port("127.0.0.1", port, timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the API on {port} did not become ready")


def _load(port: int, key: str, mode: str, clients: int, duration: float,
          rate: float | None = None, wrk: bool = False) -> dict[str, Any]:
    if wrk and mode == "single":
        return load_wrk(f"http://127.0.0.1:{port}", key, clients, duration, rate=rate)
    paced = ["--rate", str(rate)] if rate is not None else []
    out = subprocess.run(
        [sys.executable, str(LOAD), "--url", f"http://127.0.0.1:{port}", "--key", key,
         "--mode", mode, "--clients", str(clients), "--duration", str(duration), *paced],
        capture_output=True, text=True, check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", required=True, help="JSON list: name, commit, pythonpath, "
                        "args (of smsflow api)")
    parser.add_argument("--mode", choices=("single", "batch"), default="single")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per visit")
    parser.add_argument("--clients", type=int, default=None, help="default 64 single, 4 batch")
    parser.add_argument("--rate", type=float, default=None,
                        help="open loop: requests/s (default: closed loop); the runs then "
                        "record p50/p95/p99 latency")
    parser.add_argument(
        "--load-generator", choices=("auto", "wrk", "python"), default="auto",
        help="single POSTs from wrk (auto: when installed; ~0.02 ms of CPU per request) or "
        "bench/api_load.py (~0.25 ms, on the same cores as the servers). Batches: Python")
    parser.add_argument("--scenario", default="ab")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    variants: list[dict[str, Any]] = json.loads(args.variants)
    use_wrk = args.mode == "single" and wrk_chosen(args.load_generator, parser)
    # Open loop: enough connections that the pacing never waits for a free one.
    clients = args.clients or (4 if args.mode == "batch" else 256 if args.rate else 64)
    load_at_start = os.getloadavg()[0]
    bootstrap, _ = _bootstrap()
    base_env = {**os.environ, "SMSFLOW_KAFKA_BOOTSTRAP": bootstrap,
                "SMSFLOW_TOPIC_PREFIX": f"ab{os.getpid()}", "SMSFLOW_API_KEY_PEPPER": PEPPER,
                "SMSFLOW_API_ROLE": "submit"}
    runs: dict[str, list[dict[str, Any]]] = {v["name"]: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="smsflow-api-ab-") as tmp:
        codes = {v["name"]: _code(v, Path(tmp)) for v in variants}
        setup_env = {**base_env, "PYTHONPATH": str(REPO)}
        _smsflow(REPO, setup_env, "topics", "apply")
        _smsflow(REPO, setup_env, "config", "apply", "config/bench-platform.yaml")
        key = _smsflow(REPO, setup_env, "tenants", "key", "create", "acme-bank", "--quiet").strip()
        servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            for variant in variants:
                port = free_port()
                code = codes[variant["name"]]
                extra = variant.get("pythonpath")
                path = str(code) + (f":{extra}" if extra else "")
                log = Path(tmp) / f"{variant['name']}.log"
                servers[variant["name"]] = (subprocess.Popen(
                    [sys.executable, "-m", "smsflow.cli", "api", "--port", str(port),
                     "--log-level", "warning", *variant.get("args", [])],
                    cwd=code, env=tied_env({**base_env, "PYTHONPATH": path}),
                    stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                ), port)
            for _process, port in servers.values():
                _wait_ready(port)
            for _process, port in servers.values():  # warm connections and caches
                _load(port, key, args.mode, 8, 1.5)
            for round_ in range(args.rounds):
                for name, (process, port) in servers.items():
                    before = cpu_seconds({name: process.pid})[name]
                    result = _load(port, key, args.mode, clients, args.duration, args.rate,
                                   wrk=use_wrk)
                    used = cpu_seconds({name: process.pid})[name] - before
                    run = {
                        "round": round_,
                        "server_cpu_ms_per_request": round(used / result["requests"] * 1000, 4),
                        "accepted_per_s": round(result["accepted_messages"] / result["elapsed_s"]),
                        "errors": result["errors"],
                        "load_avg_1m": round(os.getloadavg()[0], 2),
                    }
                    if args.rate is not None and "latencies_ms" in result:
                        latencies = result["latencies_ms"]
                        run.update({f"p{p}_ms": percentile(latencies, p) for p in (50, 95, 99)})
                    elif args.rate is not None:  # wrk: its own percentiles and schedule
                        run.update({f"p{p}_ms": result[f"p{p}_ms"] for p in (50, 95, 99)},
                                   schedule=result.get("schedule"))
                    runs[name].append(run)
                    print(f"[api-ab] {name} {run}", file=sys.stderr, flush=True)
        finally:
            for process, _port in servers.values():
                process.terminate()
            for process, _port in servers.values():
                process.wait(30)
    summary = {
        "scenario": args.scenario,
        "mode": args.mode,
        "medians": {
            name: sorted(r["server_cpu_ms_per_request"] for r in rs)[len(rs) // 2]
            for name, rs in runs.items()
        },
        "variants": variants,
        "runs": runs,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "clients": clients,
        "rate_per_s": args.rate,
        "load_generator": "wrk" if use_wrk else "python",
        "commit": git_commit(),
        "machine": machine(load_at_start),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store_scenario(args.out, args.scenario, summary)
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0 if all(r["errors"] == 0 for rs in runs.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
