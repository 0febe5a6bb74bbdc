"""The ``smsflow`` command line: the top layer, which may import every other one.

Each feature module owns its sub-commands through a ``register(subparsers)`` function that adds
its parser and sets ``func`` (called with the parsed ``argparse.Namespace``, returns an exit code).
This package only assembles them, so adding a command never touches another feature's code.
Commands that need a layer above the contracts (the faust worker, the dev stack) live here or in
:mod:`smsflow.devstack`; a feature that needs only its own layer keeps its command beside it
(``smsflow.topics``, ``smsflow.config.cli``, ``connectors.*.cli``). Heavy imports (faust, the
agents) happen inside the command that needs them, so ``smsflow broker status`` stays quick.

Running a command imports only the module that registers it: importing all of them took
~1 s of CPU (the API and capacity modules pull in faust's types, pydantic-settings, …), paid
by every process start (the simulator, the sender, each test stack's processes). ``--help``
and anything that is not a known command build the whole parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from smsflow.devstack.lifeline import watch_starter_from_env

__all__ = ["COMMANDS", "build_parser", "main"]

#: Command -> the module whose ``register`` adds it, in the order ``smsflow --help`` lists them.
COMMANDS: dict[str, str] = {
    "broker": "smsflow.devstack.broker",
    "cluster": "smsflow.devstack.cluster",
    "registry": "smsflow.devstack.schema_registry",
    "topics": "smsflow.topics",
    "config": "smsflow.config.cli",
    "worker": "smsflow.cli.worker",
    "sender": "connectors.sender.cli",
    "webhooks": "connectors.webhooks.cli",
    "kafka-exporter": "connectors.kafka_exporter.cli",
    "smsc-sim": "connectors.smsc_sim.cli",
    "demo": "smsflow.devstack.demo",
    "dlr": "smsflow.cli.dlr",
    "routes": "smsflow.cli.routes",
    "capacity": "smsflow.cli.capacity",
    "api": "api.cli",
    "tenants": "api.tenants_cli",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone (importing only its module)."""
    parser = argparse.ArgumentParser(
        prog="smsflow", description="Kafka-native SMS messaging platform."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Started by the dev stack: end with the process that started this one (lifeline.py).
    watch_starter_from_env()
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = args_list[0] if args_list and args_list[0] in COMMANDS else None
    parser = build_parser(command)
    args = parser.parse_args(args_list)
    result: int = args.func(args)
    return result
