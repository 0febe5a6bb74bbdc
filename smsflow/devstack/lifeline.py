"""Dev-stack processes end when the process that started them is gone.

The stack's processes (:mod:`.stack`) run in their own sessions, so a Ctrl-C of the terminal
does not reach them and they are stopped in order by their starter. When the starter itself is
SIGKILLed (a pytest run killed, a benchmark interrupted hard) nobody stops them, and they used to
run on for the rest of the day, taking CPU from the next benchmark.

The launcher puts ``<pid>:<start time>`` of its own process in :data:`ENV_EXIT_WITH`
(:func:`tied_env`); ``smsflow`` (:func:`smsflow.cli.main`) calls :func:`watch_starter_from_env`
first thing, whatever the command. A daemon thread reads ``/proc/<pid>/stat`` once a second; once
that pid is gone, a zombie, or another process (its start time differs: the pid was reused), the
thread SIGTERMs its own process, so faust and aiohttp shut down as they do on Ctrl-C, and
SIGKILLs it (its process group when it leads one) if it is still there after a grace.

Why not ``PR_SET_PDEATHSIG``: it fires when the *thread* that forked the child exits, not its
process, and the tests start workers from short-lived threads (``test_scale_out.py``); it needs
a ``preexec_fn`` (unsafe in a threaded parent), and it sends one signal with no escalation.

A JVM (Kafka broker or node, schema registry) runs no smsflow code, so it cannot watch by
itself. A throwaway one, private to a test module or a benchmark, gets a *guard* instead
(:func:`start_guard`, ``python -m smsflow.devstack.lifeline <jvm>``, tied like the rest): a small
process that SIGTERMs the JVM's process group once its starter is gone, SIGKILLs it after a grace,
and ends by itself when the JVM ends first. The shared broker and registry, and what
``smsflow broker|registry|cluster start`` launches, get none: the command returns at once and
the server is meant to serve later runs, until its ``stop`` command. Production never sets the
variable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

ENV_EXIT_WITH = "SMSFLOW_EXIT_WITH_PID"
CHECK_INTERVAL_S = 1.0
GRACE_S = 10.0
"""Time between the SIGTERM and the SIGKILL: a faust worker's clean stop takes a few seconds."""

StatReader = Callable[[int], str | None]


def stat_fields(text: str) -> list[str]:
    """The fields of a ``/proc/<pid>/stat`` line after ``comm``: ``[0]`` is field 3 (state).
    ``comm`` may hold spaces and ``)``, so they are counted from the last ``)``."""
    return text[text.rindex(")") + 2:].split()


def read_stat(pid: int) -> str | None:
    """``/proc/<pid>/stat``, None when there is no such process (or no procfs)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None


def _start_ticks(text: str) -> int:
    return int(stat_fields(text)[19])  # field 22: start time, clock ticks after boot


@dataclass(frozen=True)
class Starter:
    """A process, told apart from a later one with the same pid by its start time."""

    pid: int
    start_ticks: int

    @classmethod
    def this_process(cls, read: StatReader = read_stat) -> Starter | None:
        text = read(os.getpid())
        return None if text is None else cls(os.getpid(), _start_ticks(text))

    @classmethod
    def parse(cls, token: str, read: StatReader = read_stat) -> Starter:
        """``"<pid>:<start ticks>"`` as :meth:`token` writes it, or a bare ``"<pid>"`` (from a
        shell, say): then the start time is read now, and a pid that is gone already yields a
        starter that is never alive."""
        pid_text, _, ticks_text = token.strip().partition(":")
        pid = int(pid_text)
        if ticks_text:
            return cls(pid, int(ticks_text))
        text = read(pid)
        return cls(pid, -1 if text is None else _start_ticks(text))

    def token(self) -> str:
        return f"{self.pid}:{self.start_ticks}"

    def alive(self, read: StatReader = read_stat) -> bool:
        """The process exists, has not exited (a zombie or a dying one has) and is the same."""
        text = read(self.pid)
        if text is None:
            return False
        try:
            fields = stat_fields(text)
            return fields[0] not in ("Z", "X", "x") and int(fields[19]) == self.start_ticks
        except (ValueError, IndexError):
            return False  # not a stat line we understand: do not keep an orphan alive for it


def tied_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus :data:`ENV_EXIT_WITH` naming this process: a ``smsflow`` command started
    with it ends when this process is gone. Unchanged (but for a stale value being dropped)
    where there is no procfs."""
    tied = dict(env)
    me = Starter.this_process()
    if me is None:
        tied.pop(ENV_EXIT_WITH, None)
    else:
        tied[ENV_EXIT_WITH] = me.token()
    return tied


def _stop_self(grace_s: float) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)  # a clean exit ends this daemon thread with the process
    print(f"smsflow: still running {grace_s:.0f}s after SIGTERM: SIGKILL", file=sys.stderr,
          flush=True)
    if os.getpgrp() == os.getpid():  # started in its own session: take its children along
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _watch(starter: Starter, interval_s: float, read: StatReader,
           stop: Callable[[], None]) -> None:
    while starter.alive(read):
        time.sleep(interval_s)
    print(f"smsflow: the process that started this one (pid {starter.pid}) is gone: stopping",
          file=sys.stderr, flush=True)
    stop()


def watch_starter(
    starter: Starter, *, interval_s: float = CHECK_INTERVAL_S, grace_s: float = GRACE_S,
    read: StatReader = read_stat, stop: Callable[[], None] | None = None,
) -> threading.Thread:
    """Start the daemon thread that ends this process once ``starter`` is gone (``stop``
    replaces the SIGTERM/SIGKILL, for tests)."""
    thread = threading.Thread(
        target=_watch, name="smsflow-lifeline", daemon=True,
        args=(starter, interval_s, read, stop or (lambda: _stop_self(grace_s))),
    )
    thread.start()
    return thread


def _starter_from_env(environ: MutableMapping[str, str]) -> Starter | None:
    token = environ.pop(ENV_EXIT_WITH, None)
    if not token:
        return None
    try:
        return Starter.parse(token)
    except ValueError:
        print(f"smsflow: ignoring {ENV_EXIT_WITH}={token!r} (not <pid>[:<start ticks>])",
              file=sys.stderr, flush=True)
        return None


def watch_starter_from_env(
    environ: MutableMapping[str, str] = os.environ,
) -> threading.Thread | None:
    """If :data:`ENV_EXIT_WITH` is set, watch that process (see the module docstring). The
    variable is removed, so what this process starts in turn is not tied to its starter."""
    starter = _starter_from_env(environ)
    return None if starter is None else watch_starter(starter)


def _signal(target: Starter, signum: signal.Signals, read: StatReader) -> None:
    """``signum`` to ``target``'s process group when it leads one (a JVM started in its own
    session), else to it; nothing once it is gone (its pid may be someone else's by now)."""
    text = read(target.pid)
    if text is None or not target.alive(read):
        return
    leads_group = int(stat_fields(text)[2]) == target.pid
    try:
        if leads_group:
            os.killpg(target.pid, signum)
        else:
            os.kill(target.pid, signum)
    except ProcessLookupError:
        pass  # it ended meanwhile: what we wanted


def guard(target: Starter, starter: Starter, *, interval_s: float = CHECK_INTERVAL_S,
          grace_s: float = GRACE_S, read: StatReader = read_stat) -> bool:
    """Block while ``target`` runs; if ``starter`` is gone first, stop ``target`` (SIGTERM,
    SIGKILL after ``grace_s``) and return True. False when ``target`` ended by itself."""
    while target.alive(read):
        if not starter.alive(read):
            print(f"smsflow lifeline: the starter (pid {starter.pid}) of pid {target.pid} is "
                  "gone: stopping it", file=sys.stderr, flush=True)
            _signal(target, signal.SIGTERM, read)
            deadline = time.monotonic() + grace_s
            while target.alive(read) and time.monotonic() < deadline:
                time.sleep(0.1)
            _signal(target, signal.SIGKILL, read)
            return True
        time.sleep(interval_s)
    return False


def start_guard(pid: int) -> subprocess.Popen[bytes]:
    """A guard process that stops ``pid`` (and its process group) once this process is gone.
    The caller reaps it (it ends within a second of ``pid``)."""
    target = Starter.parse(str(pid))  # the start time now: the pid may be reused later
    return subprocess.Popen(
        [sys.executable, "-m", "smsflow.devstack.lifeline", target.token()],
        env=tied_env(os.environ), stdin=subprocess.DEVNULL,
        start_new_session=True,  # the terminal's Ctrl-C is for the starter, not the guard
    )


def main(argv: list[str]) -> int:
    """``python -m smsflow.devstack.lifeline <pid>[:<start ticks>]``, tied by
    :data:`ENV_EXIT_WITH`: the guard of :func:`start_guard`."""
    starter = _starter_from_env(os.environ)
    if starter is None or len(argv) != 1:
        print(f"usage: {ENV_EXIT_WITH}=<pid>[:<start ticks>] python -m smsflow.devstack.lifeline "
              "<pid>[:<start ticks>]", file=sys.stderr)
        return 2
    guard(Starter.parse(argv[0]), starter)
    return 0


__all__ = [
    "ENV_EXIT_WITH", "Starter", "guard", "read_stat", "start_guard", "stat_fields", "tied_env",
    "watch_starter", "watch_starter_from_env",
]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
