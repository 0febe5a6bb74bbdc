"""docs/runbooks/security-incident.md, "SMPP passwords", run as written against the real broker,
a real ``smsflow sender`` process and the SMSC simulator.

The SMSC's password is a reference (``env:``). The operator changes the password at the SMSC:
the running sender loses its bind and cannot rebind with the old value (its ``sms.smsc-binds``
report says 0 bound). Following the runbook, the value behind the reference changes and the
sender restarts: it binds with the new password. ``config show`` prints the reference, never the
value. (The API-key steps are proven by
``tests/integration/test_api.py::test_revoked_key_stops_working_on_every_process_within_seconds``.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.smsc_sim import SimulatorThread
from schemas.models import SmscBindStatus
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import isolated_settings, read_records
from smsflow.devstack.lifeline import tied_env
from smsflow.devstack.stack import stack_env
from smsflow.settings import Settings
from smsflow.topics import CONFIG, SMSC_BINDS, apply_topics, topic_name

pytestmark = pytest.mark.slow

PLATFORM = Path(__file__).parent / "data" / "health-loop-platform.yaml"
REFERENCE = "SMSFLOW_RUNBOOK_SMSC_PASSWORD"


def _sim(password: str, port: int = 0) -> SimulatorThread:
    return SimulatorThread({"accounts": [{"system_id": "smsc-uk", "password": "uk-pass"},
                                         {"system_id": "smsc-flaky", "password": password}]},
                           port=port)


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    return isolated_settings(kafka_bootstrap, tmp_path, "security-runbook", partitions=1)


class Sender:
    """One ``smsflow sender`` process with the password value behind the reference."""

    def __init__(self, settings: Settings, password: str, log: Path) -> None:
        env = {**stack_env(settings), REFERENCE: password}
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "smsflow.cli", "sender", "--metrics-port", "0"],
            env=tied_env(env), stdout=self._log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        """SIGTERM, then wait for the exit (the runbook's restart, one sender at a time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self._log.close()


@pytest.fixture
def senders(settings: Settings) -> Iterator[list[Sender]]:
    started: list[Sender] = []
    yield started
    for sender in started:
        sender.stop()


def _flaky_binds(settings: Settings, pid: int) -> int | None:
    """binds_up of the latest report of the sender process ``pid`` for smsc-flaky."""
    latest = None
    for key, value in read_records(settings, SMSC_BINDS):
        if value and key and key.decode().startswith("smsc-flaky/") \
                and key.decode().endswith(f"-{pid}"):
            latest = SmscBindStatus.from_avro(value).bound
    return latest


def _wait_binds(settings: Settings, sender: Sender, up: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (seen := _flaky_binds(settings, sender.process.pid)) != up:
        assert sender.process.poll() is None, "the sender exited"
        if time.monotonic() > deadline:
            pytest.fail(f"smsc-flaky bound={seen}, wanted {up} within {timeout_s} s")
        time.sleep(0.3)


def test_smpp_password_rotation_as_the_runbook_says(
    settings: Settings, senders: list[Sender], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_topics(settings)
    old_sim = _sim("old-pw1").start()
    port = old_sim.port
    # The runbook's starting point: the SMSC's password is a reference in the YAML.
    yaml_file = tmp_path / "platform.yaml"
    yaml_file.write_text(PLATFORM.read_text().replace("password: fl-pass",
                                                      f"password: env:{REFERENCE}"))
    config = load_yaml(yaml_file)
    smscs = tuple(s.model_copy(update={"port": port}) for s in config.smscs)
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG),
                 config.model_copy(update={"smscs": smscs}))
    log = tmp_path / "sender.log"
    senders.append(Sender(settings, "old-pw1", log))
    _wait_binds(settings, senders[0], 1, timeout_s=60)

    # The operator sets the new password at the SMSC: the old one no longer binds.
    old_sim.stop()
    with _sim("new-pw2", port=port):
        _wait_binds(settings, senders[0], 0, timeout_s=30)
        time.sleep(3)  # a few reconnect attempts with the old value
        assert _flaky_binds(settings, senders[0].process.pid) == 0
        assert "bind rejected: ESME_RINVPASWD" in log.read_text()

        # Runbook step 2-3: the new value behind the reference, then restart the sender.
        senders[0].stop()
        senders.append(Sender(settings, "new-pw2", log))
        _wait_binds(settings, senders[1], 1, timeout_s=60)

    # sms.config holds the reference only, before and after the rotation.
    monkeypatch.setenv(REFERENCE, "new-pw2")
    shown = subprocess.run([sys.executable, "-m", "smsflow.cli", "config", "show"],
                           env=stack_env(settings), capture_output=True, text=True,
                           timeout=60, check=True).stdout
    assert f"env:{REFERENCE}" in shown
    assert "new-pw2" not in shown and "old-pw1" not in shown
