"""``smsflow worker``: run the faust agents (route, throttle, delivery, tracking) here, or
those of one role (``--role``, pipeline/roles.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from smsflow.gc_policy import apply_thresholds
from smsflow.settings import load_settings

_FAUST_LOG_LEVELS = ("crit", "error", "warn", "info", "debug")


def _cmd_worker(args: argparse.Namespace) -> int:
    os.environ["SMSFLOW_LOG_LEVEL"] = args.loglevel  # read into the settings below
    if args.role:
        os.environ["SMSFLOW_WORKER_ROLE"] = args.role
    from pipeline.app import create_app  # imported here: faust's import is slow
    from pipeline.roles import RoleConflict, hand_over
    from smsflow.kafka_auth import checked_connection

    settings = load_settings()
    use_event_loop(settings.worker_event_loop)
    apply_thresholds(settings.gc_thresholds)
    checked_connection(settings)  # wrong credentials end the worker here (kafka_auth.py)
    try:
        hand_over(settings)  # before joining: positions from a switch of roles
    except RoleConflict as exc:
        print(f"smsflow worker: {exc}", file=sys.stderr)
        return 2
    worker = create_app(settings)
    # Overlaps faust's start-up (see ConfigWatcher.prewarm); the worker's own group id.
    worker.config_watcher.prewarm(worker.group_id)
    sys.argv = ["smsflow-worker", "worker", "--loglevel", args.loglevel]
    if not args.web:
        sys.argv.append("--without-web")
    worker.app.main()  # runs until SIGTERM/SIGINT; faust exits the process itself
    return 0


def use_event_loop(name: str) -> None:
    """Install uvloop's event loop policy (before faust creates its loop) unless ``name`` is
    ``asyncio``. uvloop runs the loop's own machinery (ready queue, handles, selector) in C;
    with faust's per-event Python trimmed, that machinery was ~15 % of the worker's profile."""
    if name == "uvloop":
        import uvloop  # a dependency (pyproject.toml); imported only where it is used

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("worker", help="run the stream-processing agents")
    parser.add_argument("--loglevel", choices=_FAUST_LOG_LEVELS, default="info")
    parser.add_argument(
        "--role", choices=("all", "routing", "delivery"), default=None,
        help="the stages to run (default: $SMSFLOW_WORKER_ROLE, else all): routing is "
        "sms.submitted to sms.throttled, delivery sms.sent and receipts to sms.dlr in the group "
        "<app_id>-delivery (docs/operations.md#worker-roles)")
    parser.add_argument(
        "--web", action="store_true",
        help="serve Prometheus metrics at /metrics on 127.0.0.1:$SMSFLOW_WORKER_WEB_PORT "
        "(docs/metrics.md)",
    )
    parser.set_defaults(func=_cmd_worker)
