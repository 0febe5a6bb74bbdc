"""``smsflow demo``: the whole platform on this machine, with traffic, in one command.

Starts (or reuses) the local Kafka broker, applies topics and configuration, starts the SMSC
simulator, the faust worker, the SMPP sender and the tenant API (printing a demo key and a
``curl`` line), pushes N messages from several tenants while
showing each stage's progress, then prints a summary. ``--keep-running`` leaves the stack up.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from schemas.models import SubmitRequest
from smsflow.devstack.demo_api import DEMO_TENANT, curl_example, start_api
from smsflow.devstack.flowrun import STAGES, make_traffic, run_flow, warm_up
from smsflow.devstack.harness import prepared_stack
from smsflow.devstack.stack import WORKER_SHAPES, LocalStack
from smsflow.settings import Settings

# Relative to the current directory, like every command's default paths (the README runs them
# from the repository root); --config and --sim-config name other files.
DEFAULT_PLATFORM = Path("config/platform.yaml")
DEFAULT_SIM = Path("config/demo-smsc-sim.yaml")
EXIT_USAGE = 2


def ensure_broker(settings: Settings, console: Console | None = None) -> Settings:
    """Use ``SMSFLOW_KAFKA_BOOTSTRAP`` if set, else start the local broker; return settings."""
    if os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP"):
        return settings
    from smsflow.devstack.broker import LocalBroker

    if console:
        console.print("[bold]broker[/]: starting the local Kafka broker (first run downloads it)")
    bootstrap = LocalBroker.from_env(home=settings.home).start()
    return settings.model_copy(update={"kafka_bootstrap": bootstrap})


def _progress_table(counts: dict[str, int], terminal: int, total: int) -> Table:
    table = Table(title=f"smsflow demo — {terminal}/{total} messages in a terminal state")
    table.add_column("stage")
    table.add_column("records", justify="right")
    for stage in STAGES:
        table.add_row(stage, str(counts.get(stage, 0)))
    return table


def _cmd_demo(args: argparse.Namespace) -> int:
    console = Console()
    for path in (args.config, args.sim_config):
        if not path.is_file():
            console.print(f"[red]{path} not found[/] (relative to {Path.cwd()}): run from the "
                          f"repository root or pass --config / --sim-config")
            return EXIT_USAGE
    settings = ensure_broker(Settings(), console)
    roles = WORKER_SHAPES[args.roles]
    stack = prepared_stack(
        settings, platform_config=args.config, sim_config=args.sim_config, sim_port=args.sim_port,
        worker_roles=roles,
    )
    requests = make_traffic(args.messages)
    workers = "routing and delivery workers" if args.roles == "split" else "worker"
    console.print(f"[bold]stack[/]: simulator on :{args.sim_port}, {workers}, sender "
                  f"(logs in {settings.home / 'logs'})")
    with stack:
        console.print("[bold]warm-up[/]: waiting for one probe message to complete")
        console.print(f"stack ready in {warm_up(settings):.1f}s")
        if args.api_port:
            _start_api(console, stack, settings, args.api_port)
        return _run_with_progress(console, stack, settings, requests, args)


def _start_api(console: Console, stack: LocalStack, settings: Settings, port: int) -> None:
    key = start_api(stack, settings, port)
    console.print(f"[bold]api[/]: smsflow api on :{port}; demo key of {DEMO_TENANT} "
                  "(shown once):")
    console.print(key, markup=False, highlight=False, soft_wrap=True)
    console.print("try it (add --keep-running to keep the stack up after the traffic):")
    console.print(curl_example(key, port), markup=False, highlight=False, soft_wrap=True)


def _run_with_progress(
    console: Console, stack: LocalStack, settings: Settings, requests: list[SubmitRequest],
    args: argparse.Namespace,
) -> int:
    with Live(_progress_table({}, 0, len(requests)), console=console) as live:

        def progress(counts: dict[str, int], terminal: int) -> None:
            stack.check_alive()
            live.update(_progress_table(counts, terminal, len(requests)))

        result = run_flow(settings, requests, timeout_s=args.timeout, on_progress=progress)
        if args.keep_running:
            console.print("stack is running; press Ctrl-C to stop it")
            try:
                while True:
                    stack.check_alive()
                    live.refresh()
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    summary = result.summary()
    console.print_json(json.dumps(summary))
    if result.lost:
        console.print(f"[red]{result.lost} messages have no terminal state[/]")
        return 1
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run broker, simulator, pipeline and traffic")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--config", type=Path, default=DEFAULT_PLATFORM)
    parser.add_argument("--sim-config", type=Path, default=DEFAULT_SIM)
    parser.add_argument("--sim-port", type=int, default=2775)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep-running", action="store_true")
    parser.add_argument("--roles", choices=tuple(WORKER_SHAPES), default="split",
                        help="split: a routing and a delivery worker (default); all: one worker "
                             "of every stage (docs/operations.md#worker-roles)")
    parser.add_argument("--api-port", type=int, default=8080,
                        help="start the tenant API there and print a demo key (0: no API)")
    parser.set_defaults(func=_cmd_demo)
