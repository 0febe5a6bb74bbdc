"""The command table: each command's module registers exactly that command, and running a
command imports its module alone (process start-up does not pay for every other command)."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from smsflow.cli import COMMANDS, build_parser

ROOT = Path(__file__).parents[3]


def _choices(parser: argparse.ArgumentParser) -> list[str]:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(subparsers.choices)


@pytest.mark.parametrize(("command", "module"), sorted(COMMANDS.items()))
def test_each_module_registers_its_command(command: str, module: str) -> None:
    parser = argparse.ArgumentParser()
    importlib.import_module(module).register(parser.add_subparsers())
    assert _choices(parser) == [command]


def test_the_whole_parser_lists_every_command_in_order() -> None:
    assert _choices(build_parser()) == list(COMMANDS)
    assert _choices(build_parser("smsc-sim")) == ["smsc-sim"]


def test_running_the_simulator_imports_no_other_command() -> None:
    code = ("import sys\nfrom smsflow.cli import build_parser\nbuild_parser('smsc-sim')\n"
            "print(sorted(m for m in ('api.cli', 'connectors.sender.cli', 'faust', "
            "'smsflow.devstack.broker') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                         "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
