"""``smsflow kafka-exporter``: serve consumer lag, group members and broker availability."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from connectors.kafka_exporter.exporter import KafkaLagCollector, default_groups
from smsflow.kafka_auth import checked_connection
from smsflow.metrics_http import serve_metrics
from smsflow.settings import load_settings

log = logging.getLogger("smsflow.kafka_exporter")


def _cmd_exporter(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings()
    groups = args.group or default_groups(settings.app_id)
    registry = CollectorRegistry()
    # Wrong credentials end the exporter here, naming the setting (smsflow/kafka_auth.py).
    registry.register(KafkaLagCollector(checked_connection(settings), groups, args.timeout_s))
    port = settings.kafka_exporter_port if args.port is None else args.port
    if port == 0:
        log.error("kafka-exporter needs a port")
        return 2
    try:
        server = serve_metrics(registry, settings.metrics_host, port, "kafka-exporter",
                               required=True)
    except OSError as exc:
        log.error("kafka-exporter: cannot serve on %s:%d: %s", settings.metrics_host, port, exc)
        return 2
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("kafka-exporter: groups %s", ", ".join(groups))
    stop.wait()
    server.shutdown()
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "kafka-exporter", help="serve consumer lag, group members and broker availability")
    parser.add_argument("--group", action="append", default=None,
                        help="consumer group to report (repeat); default: the app's groups")
    parser.add_argument("--port", type=int, default=None,
                        help="default SMSFLOW_KAFKA_EXPORTER_PORT (6069)")
    parser.add_argument("--timeout-s", type=float, default=5.0,
                        help="time one scrape may spend on each Kafka request")
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(func=_cmd_exporter)
