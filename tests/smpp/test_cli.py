"""``smsflow smsc-sim`` as a process: starts, serves smpplib over TCP, exits 0 on SIGINT."""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.smsc_sim.cli import register

from .conftest import Esme

pytestmark = pytest.mark.smpp

ROOT = Path(__file__).resolve().parents[2]


def test_register_adds_smsc_sim_command() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["smsc-sim", "--config", "x.yaml", "--port", "2776"])
    assert args.command == "smsc-sim"
    assert (args.config, args.host, args.port) == ("x.yaml", "127.0.0.1", 2776)
    assert callable(args.func)


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["smsc-sim", "--config", str(tmp_path / "missing.yaml")])
    assert args.func(args) == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_process_serves_and_stops_on_signal(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectors.smsc_sim", "--config", "config/smsc-sim.yaml",
         "--port", "0", "--stats-interval", "0.2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert m, "no listening line"
        esme = Esme(int(m.group(1))).connect()
        try:
            assert esme.bind(system_id="smsc-uk", password="uk-pass").status == 0
            esme.submit(destination="15551234567", registered_delivery=0)
            esme.read_until(lambda: len(esme.resps) == 1)
            assert esme.resps[0].status == 0
        finally:
            esme.close()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "submits=" in stderr  # the periodic stats line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
