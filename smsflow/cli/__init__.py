"""The ``smsflow`` command line: the top layer, which may import every other one.

Each feature module owns its sub-commands through a ``register(subparsers)`` function that adds
its parser and sets ``func`` (called with the parsed ``argparse.Namespace``, returns an exit code).
This package only assembles them, so adding a command never touches another feature's code.
Commands that need a layer above the contracts (the faust worker, the dev stack) live here or in
:mod:`smsflow.devstack`; a feature that needs only its own layer keeps its command beside it
(``smsflow.topics``, ``smsflow.config.cli``, ``connectors.*.cli``). Heavy imports (faust, the
agents) happen inside the command that needs them, so ``smsflow broker status`` stays quick.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from types import ModuleType

from api import cli as api_cli
from api import tenants_cli
from connectors.kafka_exporter import cli as kafka_exporter_cli
from connectors.sender import cli as sender_cli
from connectors.smsc_sim import cli as smsc_sim_cli
from connectors.webhooks import cli as webhooks_cli
from smsflow import topics
from smsflow.cli import capacity, dlr, routes, worker
from smsflow.config import cli as config_cli
from smsflow.devstack import broker, cluster, demo, schema_registry
from smsflow.devstack.lifeline import watch_starter_from_env

__all__ = ["build_parser", "main"]

# In the order `smsflow --help` lists them.
_COMMAND_MODULES: tuple[ModuleType, ...] = (
    broker,
    cluster,
    schema_registry,
    topics,
    config_cli,
    worker,
    sender_cli,
    webhooks_cli,
    kafka_exporter_cli,
    smsc_sim_cli,
    demo,
    dlr,
    routes,
    capacity,
    api_cli,
    tenants_cli,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsflow", description="Kafka-native SMS messaging platform."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Started by the dev stack: end with the process that started this one (lifeline.py).
    watch_starter_from_env()
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
