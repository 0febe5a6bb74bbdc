"""``smsflow api``: run the tenant HTTP API; ``smsflow api openapi``: print its OpenAPI document."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from api.settings import PepperMissing, load_api_settings, resolve_pepper


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, built without Kafka (the routes do not depend on state)."""
    from api.app import create_app  # FastAPI only when needed
    from api.runtime import ApiRuntime
    from smsflow.settings import Settings

    runtime = ApiRuntime(Settings(), load_api_settings(), b"openapi-document-only")
    document: dict[str, Any] = create_app(runtime).openapi()
    return document


def _serve_granian(args: argparse.Namespace, host: str, port: int) -> int:
    """The same ASGI app under granian (HTTP in Rust): an experiment, not a dependency
    (docs/performance.md#http-api has the measurement)."""
    try:
        from granian import Granian  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("error: --server granian needs the granian package", file=sys.stderr)
        return 2
    Granian(
        "api.app:app_from_env", factory=True, address=host, port=port, interface="asgi",
        workers=args.workers, loop=args.event_loop, http="1", websockets=False,
        log_level=args.log_level, log_access=False,
    ).serve()
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    # Before the settings are read; uvicorn's workers inherit the environment.
    if args.role is not None:
        os.environ["SMSFLOW_API_ROLE"] = args.role
    if args.status_url is not None:
        os.environ["SMSFLOW_API_STATUS_URL"] = args.status_url
    api = load_api_settings()
    if api.role == "submit" and api.status_url is None:
        print("warning: role submit without SMSFLOW_API_STATUS_URL: GET /v1/messages/{id}, "
              "/v1/usage and /v1/inbound answer 503 here (route them to the status role)",
              file=sys.stderr)
    try:
        resolve_pepper(api)  # fail here, with the reason, not in every worker
    except PepperMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _check_kafka_credentials()
    # The workers inherit the environment: each admits 1/N of a tenant's API rate.
    if args.instances is not None:
        os.environ["SMSFLOW_API_INSTANCES"] = str(args.instances)
    elif args.workers > 1 and "SMSFLOW_API_INSTANCES" not in os.environ:
        os.environ["SMSFLOW_API_INSTANCES"] = str(args.workers)
    if args.server == "granian":
        return _serve_granian(args, args.host or api.host, args.port or api.port)
    uvicorn.run(
        "api.app:app_from_env",
        factory=True,
        host=args.host or api.host,
        port=args.port or api.port,
        workers=args.workers,
        http="httptools",
        loop=args.event_loop,
        log_level=args.log_level,
        access_log=False,
    )
    return 0


def _check_kafka_credentials() -> None:
    """Wrong Kafka credentials end the API here, with the setting to fix (kafka_auth.py)."""
    import logging

    from smsflow.kafka_auth import checked_connection
    from smsflow.settings import load_settings

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    checked_connection(load_settings())


def _cmd_openapi(args: argparse.Namespace) -> int:
    print(json.dumps(openapi_document(), indent=2, sort_keys=True))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("api", help="run the tenant HTTP API (docs/api.md)")
    parser.add_argument("--host", default=None, help="default $SMSFLOW_API_HOST or 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default $SMSFLOW_API_PORT, 8080")
    parser.add_argument(
        "--workers", type=int, default=1,
        help="processes behind the one port",
    )
    parser.add_argument(
        "--instances", type=int, default=None,
        help="API processes in all (replicas x workers) sharing the tenants' API rates; sets "
        "SMSFLOW_API_INSTANCES (default: --workers)",
    )
    parser.add_argument(
        "--role", choices=("all", "submit"), default=None,
        help="all: every route, with the status and inbound stores; submit: no stores, the GET "
        "routes that need one are forwarded to $SMSFLOW_API_STATUS_URL (default "
        "$SMSFLOW_API_ROLE or all; docs/deploy.md)",
    )
    parser.add_argument(
        "--status-url", default=None,
        help="role submit: base URL of a process of role all that answers the status GETs "
        "(default $SMSFLOW_API_STATUS_URL)",
    )
    parser.add_argument(
        "--event-loop", choices=("auto", "asyncio", "uvloop"), default="auto",
        help="event loop (auto: uvloop when installed; not --loop, which faust takes from any "
        "command line it is imported under)",
    )
    parser.add_argument(
        "--server", choices=("uvicorn", "granian"), default="uvicorn",
        help="HTTP server (granian only if installed; an experiment: docs/performance.md)",
    )
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(func=_cmd_serve)
    sub = parser.add_subparsers(dest="api_command")
    sub.add_parser("openapi", help="print the OpenAPI document (JSON)").set_defaults(
        func=_cmd_openapi
    )
