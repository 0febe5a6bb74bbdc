"""The dev stack's lifeline (smsflow/devstack/lifeline.py): the liveness check of a starter, with
a fake /proc reader and with this process's real /proc, and the self-stop it triggers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from smsflow.devstack.lifeline import (
    ENV_EXIT_WITH,
    Starter,
    guard,
    stat_fields,
    tied_env,
    watch_starter,
    watch_starter_from_env,
)
from tests.paths import REPO_ROOT

needs_procfs = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs procfs")


def _stat(pid: int, state: str, start: int, comm: str = "python3") -> str:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    # stime cutime cstime priority nice threads itrealvalue starttime vsize ...
    return (f"{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 "
            f"{start} 456789 12 ...\n")


def test_stat_fields_start_at_the_state_even_with_parens_in_comm() -> None:
    fields = stat_fields(_stat(7, "S", 99, comm="a) b (c"))
    assert fields[0] == "S"
    assert fields[19] == "99"


@pytest.mark.parametrize("state", ["R", "S", "D", "T"])
def test_a_running_starter_with_its_start_time_is_alive(state: str) -> None:
    assert Starter(42, 1000).alive({42: _stat(42, state, 1000)}.get)


@pytest.mark.parametrize("stats", [
    {},  # gone
    {42: _stat(42, "Z", 1000)},  # exited, not reaped yet (its parent did not wait)
    {42: _stat(42, "X", 1000)},  # dead
    {42: _stat(42, "S", 2000)},  # the pid was reused by a later process
    {42: "garbage"},
], ids=["gone", "zombie", "dead", "reused-pid", "unreadable"])
def test_a_starter_is_gone(stats: dict[int, str]) -> None:
    assert not Starter(42, 1000).alive(stats.get)


def test_parse_reads_the_start_time_of_a_bare_pid() -> None:
    read = {42: _stat(42, "S", 1000)}.get
    assert Starter.parse("42:1000") == Starter(42, 1000)
    assert Starter.parse("42", read) == Starter(42, 1000)
    assert not Starter.parse("43", read).alive(read)  # gone before we looked: never alive
    with pytest.raises(ValueError):
        Starter.parse("not-a-pid")


@needs_procfs
def test_this_process_is_alive_and_an_impostor_with_its_pid_is_not() -> None:
    me = Starter.this_process()
    assert me is not None and me.pid == os.getpid()
    assert me.alive()
    assert not Starter(me.pid, me.start_ticks + 1).alive()
    assert Starter.parse(me.token()) == me


@needs_procfs
def test_tied_env_names_this_process_and_keeps_the_rest() -> None:
    env = tied_env({"A": "1", ENV_EXIT_WITH: "1:2"})
    assert env["A"] == "1"
    assert Starter.parse(env[ENV_EXIT_WITH]) == Starter.this_process()


def test_the_watch_stops_once_the_starter_is_gone() -> None:
    stats = {42: _stat(42, "S", 1000)}
    stopped = threading.Event()
    watch_starter(Starter(42, 1000), interval_s=0.01, read=stats.get, stop=stopped.set)
    assert not stopped.wait(0.1)
    stats[42] = _stat(42, "Z", 1000)
    assert stopped.wait(10)


def test_watch_from_env_takes_the_variable_out_of_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {ENV_EXIT_WITH: "nonsense", "A": "1"}
    assert watch_starter_from_env(environ) is None
    assert environ == {"A": "1"}  # not passed on to what this process starts
    assert "ignoring" in capsys.readouterr().err
    assert watch_starter_from_env({}) is None


CHILD = """
import os, signal, sys, time
from smsflow.devstack.lifeline import Starter, watch_starter
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
# Our own pid with another start time: a starter that is gone.
watch_starter(Starter(os.getpid(), -1), interval_s=0.05, grace_s=0.5)
time.sleep(60)
"""


@needs_procfs
@pytest.mark.parametrize(("on_sigterm", "ended_by"), [
    ("default", signal.SIGTERM), ("ignore", signal.SIGKILL),
])
def test_a_process_whose_starter_is_gone_stops_itself(on_sigterm: str,
                                                      ended_by: signal.Signals) -> None:
    """SIGTERM first; SIGKILL (of its process group: it leads one) when that is ignored."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, on_sigterm], cwd=REPO_ROOT,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -ended_by, err
    assert "is gone: stopping" in err


def _target(*, ignore_sigterm: bool) -> subprocess.Popen[bytes]:
    """A stand-in JVM: sleeps in its own session (as java_service starts the JVM)."""
    code = ("import signal, sys, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_sigterm else "")
            + "print('ready', flush=True); time.sleep(60)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               start_new_session=True)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


@needs_procfs
@pytest.mark.parametrize(("ignore_sigterm", "ended_by"), [
    (False, signal.SIGTERM), (True, signal.SIGKILL),
])
def test_the_guard_stops_its_target_once_the_starter_is_gone(
    ignore_sigterm: bool, ended_by: signal.Signals,
) -> None:
    target = _target(ignore_sigterm=ignore_sigterm)
    try:
        gone = Starter(os.getpid(), -1)  # our pid, another start time: a starter that is gone
        # The guard returns once the target has exited: a zombie until we reap it below.
        assert guard(Starter.parse(str(target.pid)), gone, interval_s=0.05, grace_s=0.5)
        assert target.wait(10) == -ended_by
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()
        if target.stdout is not None:
            target.stdout.close()


@needs_procfs
def test_the_guard_ends_with_its_target_while_the_starter_lives() -> None:
    target = _target(ignore_sigterm=False)
    me = Starter.this_process()
    assert me is not None
    target.terminate()
    target.wait(10)
    assert target.stdout is not None
    target.stdout.close()
    assert guard(Starter(target.pid, -1), me, interval_s=0.05) is False
