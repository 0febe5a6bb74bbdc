"""HTTP API benchmark: single and batch POSTs against `smsflow api` in front of the full stack.

    python bench/api.py --json                       # the headline (bench/results/api.json)
    python bench/api.py --instances 2 --scenario two-processes
    python bench/api.py --role all                   # one process type that keeps the stores

Uses the local broker (or SMSFLOW_KAFKA_BOOTSTRAP), an isolated set of topics and a fresh stack
(simulator, worker, sender; config/bench-platform.yaml), then starts ``smsflow api --workers N
--role submit`` (N processes sharing the port with SO_REUSEPORT-style accept sharing by
uvicorn) and one ``smsflow api --role all`` for the forwarded status GETs, as the Kubernetes
manifests deploy them (``--role all``: the N processes keep the stores themselves, no status
process). ``--no-status`` means no status store anywhere: with ``--role submit`` no status
process is started (the submit processes get no ``--status-url``; the bench sends no GET, so
nothing is forwarded), with ``--role all`` the N processes keep no status store. It creates a
key. The load comes from separate processes, in three phases:

1. singles, closed loop (``--clients`` per load process): ``accepted_per_s``, p50/p95/p99;
2. singles, open loop at ``--open-loop-share`` (50%) of phase 1's rate: ``open_loop_p99_ms``,
   once the pipeline has caught up with phase 1 (backlog at most ``--settle-backlog``
   records, waiting at most ``--settle-timeout-s``; both reported as ``backlog_at_start``
   and ``settled_s``), so that the latency phase does not measure the previous phase's drain;
3. batches of ``--batch`` messages, closed loop: ``batch_accepted_per_s`` (messages/s).
   Last, because ~450,000 accepted messages keep the pipeline busy for minutes.

The single POSTs come from ``wrk`` (C, keep-alive, one thread; bench/wrk_post.lua closed
loop, or on a fixed schedule that reports the requests which started late)
when it is installed (``apt-get install wrk``), else from bench/api_load.py (aiohttp pools);
``--load-generator`` chooses. The generator shares the two cores with the server and the
pipeline: aiohttp costs ~0.25 ms of CPU per request, more than the server, wrk ~0.02-0.04
(``load_cpu_ms_per_request`` in each phase). The batches always come from bench/api_load.py.

Every answer other than 202 is an error (``errors``; by status in ``statuses``). Server CPU per
request is read from /proc for the API's process group during each phase. The stack keeps
delivering what was accepted in the background, so the API shares the machine with the
pipeline it feeds, as in production on one box. Results are stored under the scenario name in
bench/results/api.json, with the commit, the machine and its load average: this machine is
shared, so compare runs only at similar load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path and this module would shadow
# the `api` package it benchmarks: take the directory out, put the repository in.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from api.settings import ApiSettings, resolve_pepper  # noqa: E402
from api.tenants_cli import create_key  # noqa: E402
from bench.e2e import _bootstrap, git_commit, machine, store_scenario  # noqa: E402
from smsflow.devstack.backlog import settle  # noqa: E402
from smsflow.devstack.demo_api import pepper_file  # noqa: E402
from smsflow.devstack.flowrun import percentile, warm_up  # noqa: E402
from smsflow.devstack.harness import (  # noqa: E402
    delete_run_topics,
    free_port,
    isolated_settings,
    prepared_stack,
)
from smsflow.devstack.stack import (  # noqa: E402
    WORKER_SHAPES,
    LocalStack,
    ManagedProcess,
    cpu_seconds,
    wait_for_port,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "api.json"
LOAD = Path(__file__).with_name("api_load.py")
WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")


def _start_api(stack: LocalStack, home: Path, port: int, instances: int, status: bool,
               role: str = "all", status_url: str | None = None, name: str = "api",
               loop: str = "auto", server: str = "uvicorn") -> ManagedProcess:
    env = {**stack.env, "SMSFLOW_API_KEY_PEPPER_FILE": str(pepper_file(home)),
           "SMSFLOW_API_STATUS_ENABLED": "true" if status else "false"}
    if status_url is not None:
        env["SMSFLOW_API_STATUS_URL"] = status_url
    api = ManagedProcess(
        name,
        [*stack.smsflow_argv(), "api", "--port", str(port), "--workers", str(instances),
         "--role", role, "--event-loop", loop, "--server", server, "--log-level", "warning"],
        home / "logs" / f"{name}.log",
    )
    api.start(env)
    stack.processes.append(api)
    wait_for_port("127.0.0.1", port, 60)
    return api


def _renice(processes: list[ManagedProcess], niceness: int, idle: bool = False) -> None:
    """Lower the CPU priority of every thread of ``processes`` (Linux: a nice value is per
    thread, and librdkafka's and aiokafka's threads already run): to ``niceness``, or with
    ``idle`` to ``SCHED_IDLE`` (runs only when no other thread wants the core; a thread of
    normal priority that wakes takes the core at once). Threads started later inherit it.

    Each managed process runs in a session of its own, and with the kernel's autogroups
    (``/proc/sys/kernel/sched_autogroup_enabled``, on in most distributions) every session is
    a scheduling group that gets a fair share of the CPU against the others whatever its
    threads' nice values: a thread's nice only ranks it inside its own group. So the group's
    nice is set too (``/proc/<pid>/autogroup``; the lowest, 19, for ``idle``)."""
    group_nice = 19 if idle else niceness
    for managed in processes:
        if managed.process is None:
            continue
        pid = managed.process.pid
        autogroup = Path(f"/proc/{pid}/autogroup")
        if autogroup.exists():
            with contextlib.suppress(OSError):  # not permitted: thread priorities still apply
                autogroup.write_text(f"{group_nice}\n")
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(ProcessLookupError):
                if idle:
                    os.sched_setscheduler(int(task.name), os.SCHED_IDLE, os.sched_param(0))
                else:
                    os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)


def _wait_ready(url: str, timeout_s: float = 120.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError("the API did not become ready")


def _load(url: str, key: str, processes: int, **flags: Any) -> dict[str, Any]:
    """Run ``processes`` load generators at once; their results merged."""
    argv = [sys.executable, str(LOAD), "--url", url, "--key", key]
    for name, value in flags.items():
        if value is not None:
            argv += [f"--{name}", str(value)]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    outs = [json.loads(run.communicate()[0]) for run in runs]
    statuses: dict[str, int] = {}
    for out in outs:
        for status, count in out["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    latencies = [x for out in outs for x in out["latencies_ms"]]
    return {
        "requests": sum(o["requests"] for o in outs),
        "accepted_messages": sum(o["accepted_messages"] for o in outs),
        "errors": sum(o["errors"] for o in outs),
        "statuses": statuses,
        "elapsed_s": max(o["elapsed_s"] for o in outs),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
    }


def load_wrk(url: str, key: str, connections: int, duration: float,
              rate: float | None = None) -> dict[str, Any]:
    """Single POSTs from wrk (bench/wrk_post.lua), in the shape of :func:`_load`: closed loop,
    or open loop at ``rate``/s (send slots on a fixed schedule, and
    ``schedule`` says how many requests started late because every connection was busy,
    whose wait wrk's latency does not include). wrk counts an answer of status 400 and above
    as an error and reports no status codes, so ``statuses`` holds "2xx/3xx" and ">=400"; the
    API answers an accepted POST with 202 only."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
            "--timeout", "30s", "-s", str(WRK_SCRIPT), url, "--", key]
    env = {k: v for k, v in os.environ.items() if k != "SMSFLOW_WRK_RATE"}
    if rate is not None:
        env["SMSFLOW_WRK_RATE"] = str(rate)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
    found = re.search(r"^WRKJSON (\{.*\})$", out, re.MULTILINE)
    if found is None:
        raise SystemExit(f"wrk printed no WRKJSON line:\n{out}")
    run = json.loads(found.group(1))
    refused = run["non_2xx"]
    failed = run["connect"] + run["read"] + run["write"] + run["timeout"]
    result: dict[str, Any] = {
        "requests": run["requests"] + failed,
        "accepted_messages": run["requests"] - refused,
        "errors": refused + failed,
        "statuses": {"2xx/3xx": run["requests"] - refused, ">=400": refused,
                     "socket errors": failed},
        "elapsed_s": run["duration_us"] / 1e6,
        "p50_ms": run["p50_us"] / 1000,
        "p95_ms": run["p95_us"] / 1000,
        "p99_ms": run["p99_us"] / 1000,
        "load_generator": "wrk",
    }
    if rate is not None:
        result["schedule"] = {
            "slots": run["slots"], "late_over_1ms": run["late_1ms"],
            "late_over_10ms": run["late_10ms"], "late_max_ms": round(run["late_max_us"] / 1000, 1),
            "kept": run["late_10ms"] <= run["slots"] // 100,
        }
    return result


def wrk_chosen(choice: str, parser: argparse.ArgumentParser) -> bool:
    """``--load-generator``: whether wrk sends the single POSTs (``auto``: when installed)."""
    installed = shutil.which("wrk") is not None
    if choice == "wrk" and not installed:
        parser.error("--load-generator wrk: wrk is not installed (apt-get install wrk)")
    return choice == "wrk" or (choice == "auto" and installed)


def _children_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _phase(name: str, api: ManagedProcess, url: str, key: str, processes: int,
           status: ManagedProcess | None = None, wrk: bool = False,
           **flags: Any) -> dict[str, Any]:
    print(f"[api] {name} ...", file=sys.stderr, flush=True)
    assert api.process is not None
    pid = {"api": api.process.pid}
    if status is not None and status.process is not None:
        pid["status"] = status.process.pid
    before, load_before = cpu_seconds(pid), _children_cpu_s()
    if wrk:
        rate = flags.get("rate")
        result = load_wrk(url, key, processes * flags["clients"], flags["duration"],
                           rate=None if rate is None else processes * rate)
    else:
        result = {**_load(url, key, processes, **flags), "load_generator": "python"}
    after = cpu_seconds(pid)
    # The load processes are reaped when they end: their CPU is the children's delta.
    load_used = _children_cpu_s() - load_before
    result["load_cpu_s"] = round(load_used, 2)
    result["load_cpu_ms_per_request"] = (
        round(load_used / result["requests"] * 1000, 3) if result["requests"] else None
    )
    used = after["api"] - before["api"]
    result["server_cpu_s"] = round(used, 2)
    result["server_cpu_ms_per_request"] = (
        round(used / result["requests"] * 1000, 3) if result["requests"] else None
    )
    if "status" in pid:  # the status process (role all) folds the traffic the API accepted
        folded = after["status"] - before["status"]
        result["status_cpu_s"] = round(folded, 2)
        result["status_cpu_ms_per_request"] = (
            round(folded / result["requests"] * 1000, 3) if result["requests"] else None
        )
    result["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(f"[api] {name}: {result['requests']} requests, {result['errors']} errors, "
          f"p99 {result['p99_ms']} ms", file=sys.stderr, flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1, help="API processes on the port")
    parser.add_argument("--clients", type=int, default=64, help="connections per load process")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument(
        "--load-generator", choices=("auto", "wrk", "python"), default="auto",
        help="single POSTs (closed and open loop) from wrk (C, bench/wrk_post.lua) or from "
        "bench/api_load.py (aiohttp, ~10x wrk's CPU per request); auto: wrk when installed "
        "(apt-get install wrk). Batches always come from bench/api_load.py")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batch-clients", type=int, default=4)
    parser.add_argument("--open-loop-share", type=float, default=0.5)
    parser.add_argument("--settle-backlog", type=int, default=200,
                        help="start the open-loop phase once at most this many records wait "
                        "in the pipeline (worker and sender lag)")
    parser.add_argument("--settle-timeout-s", type=float, default=120.0)
    parser.add_argument("--no-status", action="store_true",
                        help="no status store anywhere (it folds all stage traffic): with "
                        "--role submit no status process is started, with --role all the "
                        "measured processes keep none. The bench sends only POSTs")
    parser.add_argument(
        "--role", choices=("all", "submit"), default="submit",
        help="submit (the default, as k8s/base/api.yaml deploys it): the measured processes "
        "keep no store; one more process of role all (measured apart: status_cpu_*) keeps "
        "them and answers the forwarded GETs. all: the measured processes keep the stores",
    )
    parser.add_argument("--event-loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="the measured API processes' event loop (smsflow api --loop)")
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn",
                        help="the measured API processes' HTTP server (smsflow api --server)")
    parser.add_argument("--platform-config", type=Path, default=REPO / "config/bench-platform.yaml")
    parser.add_argument("--sim-config", type=Path, default=REPO / "config/bench-smsc-sim.yaml")
    parser.add_argument(
        "--pipeline-nice", type=int, default=0,
        help="run the pipeline (worker, sender, simulator) at this nice value, the API and the "
        "broker at 0: the API's CPU priority that separate pods or nodes would give it")
    parser.add_argument(
        "--pipeline-idle", action="store_true",
        help="run the pipeline's threads at SCHED_IDLE instead (Linux): they get a core only "
        "when the API, its load and the broker leave it, and give it back at once")
    parser.add_argument("--worker-roles", choices=tuple(WORKER_SHAPES), default="split",
                        help="the pipeline's workers: a routing and a delivery worker (default, "
                             "as bench/e2e.py), or one worker of every stage")
    parser.add_argument("--scenario", default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    use_wrk = wrk_chosen(args.load_generator, parser)
    scenario = args.scenario or (
        f"instances-{args.instances}" + ("-no-status" * args.no_status)
        + ("-submit-role" * (args.role == "submit"))
        + (f"-{args.server}" * (args.server != "uvicorn"))
        + (f"-pipeline-nice-{args.pipeline_nice}" * (args.pipeline_nice != 0))
        + ("-pipeline-idle" * args.pipeline_idle)
        + ("-wrk" * use_wrk)
    )
    load_at_start = os.getloadavg()[0]
    bootstrap, _broker_pid = _bootstrap()
    with tempfile.TemporaryDirectory(prefix="smsflow-bench-api-") as tmp:
        home = Path(tmp)
        settings = isolated_settings(bootstrap, home, "benchapi")
        roles = WORKER_SHAPES[args.worker_roles]
        with prepared_stack(settings, platform_config=args.platform_config,
                            sim_config=args.sim_config, worker_roles=roles) as stack:
            warm_up(settings)
            if args.pipeline_nice or args.pipeline_idle:
                _renice(list(stack.processes), args.pipeline_nice, idle=args.pipeline_idle)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            status_api = None
            status_url = None
            if args.role == "submit" and not args.no_status:
                status_port = free_port()
                status_url = f"http://127.0.0.1:{status_port}"
                status_api = _start_api(stack, home, status_port, 1, True, name="api-status")
            api = _start_api(stack, home, port, args.instances, not args.no_status,
                             role=args.role, status_url=status_url, loop=args.event_loop,
                             server=args.server)
            key, _ = create_key(
                settings, resolve_pepper(ApiSettings(key_pepper_file=pepper_file(home))),
                "acme-bank", label="bench",
            )
            _wait_ready(url)
            if status_url is not None:
                _wait_ready(status_url)
            _load(url, key, 1, mode="single", clients=8, duration=2)  # warm connections, JIT-free
            single = _phase("singles, closed loop", api, url, key, args.load_processes,
                            status=status_api, wrk=use_wrk, mode="single",
                            clients=args.clients, duration=args.duration)
            accepted_per_s = single["accepted_messages"] / single["elapsed_s"]
            settled_s, backlog = settle(settings, at_most=args.settle_backlog,
                                        timeout_s=args.settle_timeout_s)
            print(f"[api] pipeline backlog {backlog} records after {settled_s:.0f} s",
                  file=sys.stderr, flush=True)
            open_rate = max(1.0, accepted_per_s * args.open_loop_share)
            open_loop = _phase(f"singles, open loop at {open_rate:.0f}/s", api, url, key,
                               args.load_processes, status=status_api, wrk=use_wrk,
                               mode="single", clients=args.clients * 4, duration=args.duration,
                               rate=round(open_rate / args.load_processes, 1))
            open_loop["backlog_at_start"] = backlog
            open_loop["settled_s"] = round(settled_s, 1)
            batch = _phase("batches, closed loop", api, url, key, 1, status=status_api,
                           mode="batch",
                           batch=args.batch, clients=args.batch_clients,
                           duration=args.duration)
            stack.check_alive()
    delete_run_topics(bootstrap)  # later runs on this broker must not carry this one's
    summary = {
        "scenario": scenario,
        "accepted_per_s": round(accepted_per_s),
        "batch_accepted_per_s": round(batch["accepted_messages"] / batch["elapsed_s"]),
        "p50_ms": single["p50_ms"],
        "p95_ms": single["p95_ms"],
        "p99_ms": single["p99_ms"],
        "open_loop_rate_per_s": round(open_rate),
        "open_loop_p50_ms": open_loop["p50_ms"],
        "open_loop_p99_ms": open_loop["p99_ms"],
        "errors": single["errors"] + batch["errors"] + open_loop["errors"],
        "targets": {"accepted_per_s": 5500, "batch_accepted_per_s": 50000,
                    "open_loop_p99_ms": 50, "errors": 0},
        "phases": {"single": single, "batch": batch, "open_loop": open_loop},
        "instances": args.instances,
        "clients": args.clients,
        "load_processes": args.load_processes,
        "load_generator": single["load_generator"],
        "batch_size": args.batch,
        "status_store": not args.no_status,
        "role": args.role,
        "loop": args.event_loop,
        "server": args.server,
        "pipeline_nice": args.pipeline_nice,
        "pipeline_idle": args.pipeline_idle,
        "worker_roles": list(roles),
        "duration_s": args.duration,
        "commit": git_commit(),
        "machine": machine(load_at_start),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store_scenario(args.out, scenario, summary)
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
