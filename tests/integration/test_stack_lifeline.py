"""What the dev stack starts ends by itself when the process that started it is SIGKILLed.

A real parent python process starts a one-process ``LocalStack`` (the SMSC simulator: cheap,
no Kafka) from a thread that ends at once, as ``test_scale_out.py`` adds workers, and then
waits. The test SIGKILLs the parent and does not reap it, so the parent is a zombie at first:
the child must count a zombie starter as gone. The child must then stop on its own
(``smsflow/devstack/lifeline.py``), well within :data:`GONE_WITHIN_S`. The same for a server
launched through ``LocalJavaService`` with ``exit_with_starter`` (its guard stops it), with the
stand-in of ``tests/unit/devstack/test_java_service.py`` playing the JVM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from smsflow.devstack.harness import free_port
from smsflow.devstack.lifeline import Starter
from tests.paths import REPO_ROOT, SIM_CONFIG

GONE_WITHIN_S = 30.0
"""A bound, not a timing assertion: the child checks every second and stops in a few."""

PARENT = """
import json, os, sys, threading
from pathlib import Path
from smsflow.devstack.stack import LocalStack

stack = LocalStack(home=Path(sys.argv[1]), env=dict(os.environ), sim_config=Path(sys.argv[2]),
                   sim_port=int(sys.argv[3]), workers=0, senders=0)
# Started from a short-lived thread: PR_SET_PDEATHSIG would fire as soon as it ends.
starter = threading.Thread(target=stack.start)
starter.start()
starter.join()
print(json.dumps(stack.pids()), flush=True)
threading.Event().wait()
"""

JAVA_PARENT = """
import json, sys, threading
from pathlib import Path
from tests.unit.devstack.test_java_service import StandIn

server = StandIn(Path(sys.argv[1]), int(sys.argv[2]))
server.exit_with_starter = True
server.start(30)
print(json.dumps({"server": server.pid()}), flush=True)
threading.Event().wait()
"""


def _orphaned_after_kill(tmp_path: Path, parent_code: str, *args: str) -> tuple[str, Starter]:
    """Run ``parent_code`` with ``args``; it prints ``{name: pid}`` of the one process it
    started. SIGKILL the parent (not reaped: a zombie at first) and wait for that process to
    end; returns its name and identity. Kills it itself if the test fails."""
    script = tmp_path / "parent.py"
    script.write_text(parent_code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    parent = subprocess.Popen([sys.executable, str(script), *args], cwd=REPO_ROOT, env=env,
                              stdout=subprocess.PIPE, text=True)
    child: Starter | None = None
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline() or "{}")
        assert len(pids) == 1, f"the parent did not start its one process: {pids}"
        (name, pid), = pids.items()
        child = Starter.parse(str(pid))  # with its start time: pids get reused
        assert child.alive()

        parent.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + GONE_WITHIN_S
        while child.alive():
            assert time.monotonic() < deadline, (
                f"{name} (pid {child.pid}) still runs {GONE_WITHIN_S}s after its starter was "
                f"killed")
            time.sleep(0.1)
        return name, child
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
        if child is not None and child.alive():  # the test failed: leave no orphan behind
            os.killpg(child.pid, signal.SIGKILL)


def test_stack_process_ends_when_its_starter_is_killed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    name, _ = _orphaned_after_kill(tmp_path, PARENT, str(home), str(SIM_CONFIG),
                                   str(free_port()))
    assert name == "smsc-sim"
    log = (home / "logs" / "smsc-sim.log").read_text(errors="replace")
    assert "is gone: stopping" in log, log[-2000:]
    assert "stopped" in log.splitlines()[-1], "a clean stop (SIGTERM), not a kill"


def test_tied_java_service_ends_when_its_starter_is_killed(tmp_path: Path) -> None:
    name, _ = _orphaned_after_kill(tmp_path, JAVA_PARENT, str(tmp_path / "home"),
                                   str(free_port()))
    assert name == "server"
