"""The ``smsflow`` command line.

Each feature module owns its sub-commands through a ``register(subparsers)`` function that adds
its parser and sets ``func`` (called with the parsed ``argparse.Namespace``, returns an exit code).
This module only assembles them, so adding a command never touches another feature's code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that contribute sub-commands, imported lazily so `smsflow broker status` does not pay
# for faust's import time.
_COMMAND_MODULES: tuple[str, ...] = (
    "smsflow.broker",
    "smsflow.schema_registry_server",
    "smsflow.topics",
    "smsflow.config.cli",
    "smsflow.worker",
    "connectors.sender.cli",
    "connectors.webhooks.cli",
    "connectors.kafka_exporter.cli",
    "connectors.smsc_sim.cli",
    "smsflow.demo",
    "smsflow.dlr_cli",
    "smsflow.routes_cli",
    "api.cli",
    "api.tenants_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsflow", description="Kafka-native SMS messaging platform."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
