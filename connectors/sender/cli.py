"""``smsflow sender``: run the SMPP sender until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
from types import FrameType
from typing import Any

from connectors.sender.probe import probe
from connectors.sender.service import SenderService
from smsflow.config.kafka_io import read_config
from smsflow.gc_policy import apply_thresholds
from smsflow.kafka_auth import checked_connection
from smsflow.metrics_http import serve_metrics
from smsflow.native import log_status
from smsflow.settings import load_settings
from smsflow.topics import CONFIG, topic_name

log = logging.getLogger("smsflow.sender")


def _cmd_sender(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log_status(log)  # compiled hot modules (smsflow/native.py)
    settings = load_settings()
    apply_thresholds(settings.gc_thresholds)
    config = read_config(checked_connection(settings), topic_name(settings, CONFIG))
    if not config.smscs:
        log.error("no SMSC connections configured: run `smsflow config apply` first")
        return 2
    service = SenderService(settings, config)
    port = settings.sender_metrics_port if args.metrics_port is None else args.metrics_port
    server = serve_metrics(service.metrics.registry, settings.metrics_host, port, "sender",
                           probe=lambda: probe(service))

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: draining", signum)
        service.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        service.run()
    finally:
        server.shutdown()
    log.info("sender stopped: %s", service.stats)
    # Everything is closed and flushed: keep the interpreter's final garbage collections
    # from walking the whole heap (the routing catalogue's number tables: ~0.5-1 s of exit).
    gc.freeze()
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sender", help="run the SMPP sender connector")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve /metrics on this port (default SMSFLOW_SENDER_METRICS_PORT, "
                             "6067; 0: off)")
    parser.set_defaults(func=_cmd_sender)
