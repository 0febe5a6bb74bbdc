"""``smsflow webhooks run``: POST delivery reports and MO messages to tenants' webhooks until
SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from connectors.webhooks.service import WebhookOptions, WebhookService
from smsflow.config.kafka_io import read_config
from smsflow.kafka_auth import checked_connection
from smsflow.metrics_http import serve_metrics
from smsflow.settings import load_settings
from smsflow.topics import CONFIG, topic_name

log = logging.getLogger("smsflow.webhooks")


def _cmd_run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings()
    config = read_config(checked_connection(settings), topic_name(settings, CONFIG))
    if not any(tenant.webhook for tenant in config.tenants):
        # Not an error: webhooks added later are picked up live. Until then reports are skipped.
        log.warning("no tenant has a webhook configured yet; reports are skipped until one does")
    options = WebhookOptions(
        group_id=args.group_id,
        config_refresh_s=args.config_refresh_s,
        metrics_interval_s=args.metrics_interval_s,
        tenant_backlog=args.tenant_backlog,
    )
    service = WebhookService(settings, config, options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, service.stop)
        await service.run()

    port = settings.webhooks_metrics_port if args.metrics_port is None else args.metrics_port
    server = serve_metrics(service.registry, settings.metrics_host, port, "webhooks")
    try:
        asyncio.run(main())
    finally:
        server.shutdown()
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "webhooks", help="POST delivery reports and MO messages to tenant webhooks"
    )
    sub = parser.add_subparsers(dest="webhooks_command", required=True)
    run = sub.add_parser("run", help="run the webhook connector (consumes sms.dlr and sms.inbound)")
    run.add_argument("--group-id", default=None,
                     help="consumer group (default: <SMSFLOW_APP_ID>-webhooks)")
    run.add_argument("--config-refresh-s", type=float, default=5.0,
                     help="how often sms.config is re-read for webhook changes")
    run.add_argument("--metrics-interval-s", type=float, default=30.0,
                     help="how often the counters are logged")
    run.add_argument("--tenant-backlog", type=int, default=1_000,
                     help="reports (or MO messages) one tenant may have waiting before its "
                          "partition pauses")
    run.add_argument("--log-level", default="info")
    run.add_argument("--metrics-port", type=int, default=None,
                     help="serve /metrics on this port (default SMSFLOW_WEBHOOKS_METRICS_PORT, "
                          "6068; 0: off)")
    run.set_defaults(func=_cmd_run)
