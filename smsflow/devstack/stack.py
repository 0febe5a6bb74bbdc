"""Start and stop the local stack's processes: SMSC simulator, faust worker, SMPP sender.

Used by ``smsflow demo``, ``bench/e2e.py`` and the end-to-end tests, so all three run the very
same commands an operator would. Each process gets the same environment (bootstrap, topic
prefix, app id) and logs to ``<home>/logs/<name>.log``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from smsflow.devstack.lifeline import stat_fields, tied_env
from smsflow.settings import Settings, WorkerRole


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: Mapping[str, str]) -> None:
        """Start it in its own session (the terminal's Ctrl-C reaches only the starter, which
        stops the stack in order); a ``smsflow`` command ends by itself once this process is
        gone (:mod:`.lifeline`), so a killed test run or benchmark leaves nothing behind."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=tied_env(env),
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def stack_env(settings: Settings) -> dict[str, str]:
    """The environment every child process gets: the same bootstrap, prefix, app id, home."""
    env = dict(os.environ)
    env.update(
        SMSFLOW_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        SMSFLOW_TOPIC_PREFIX=settings.topic_prefix,
        SMSFLOW_APP_ID=settings.app_id,
        SMSFLOW_HOME=str(settings.home),
        SMSFLOW_PARTITIONS=str(settings.partitions),
        # faust declares its own topics (changelogs) with it: as replicated as the flow topics.
        SMSFLOW_REPLICATION_FACTOR=str(settings.replication_factor),
        SMSFLOW_KAFKA_SECURITY_PROTOCOL=settings.kafka_security_protocol,
        SMSFLOW_KAFKA_SASL_MECHANISM=settings.kafka_sasl_mechanism,
    )
    # Optional security settings: passed when set, cleared otherwise (the parent's environment
    # must not add credentials the settings do not have). The password goes as configured: a
    # reference stays a reference, resolved by the child.
    password = settings.kafka_sasl_password
    optional = {
        "SMSFLOW_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "SMSFLOW_KAFKA_SASL_PASSWORD": None if password is None else password.get_secret_value(),
        "SMSFLOW_KAFKA_SSL_CA_FILE": settings.kafka_ssl_ca_file,
        "SMSFLOW_KAFKA_SSL_CERT_FILE": settings.kafka_ssl_cert_file,
        "SMSFLOW_KAFKA_SSL_KEY_FILE": settings.kafka_ssl_key_file,
    }
    for name, value in optional.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def parse_proc_stat(text: str) -> tuple[int, int]:
    """``(process group, CPU ticks)`` from one ``/proc/<pid>/stat`` line. The ticks are utime +
    stime plus cutime + cstime (children it has reaped)."""
    fields = stat_fields(text)
    # fields[0] is field 3 (state): pgrp is field 5, utime..cstime are fields 14..17.
    return int(fields[2]), sum(int(f) for f in fields[11:15])


def _proc_stats() -> dict[int, tuple[int, int]]:
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = parse_proc_stat((entry / "stat").read_text())
            except (OSError, ValueError):
                pass  # gone meanwhile
    return stats


def _counted(stats: Mapping[int, tuple[int, int]], pid: int) -> list[int]:
    """The processes counted for ``pid``: a process group leader's whole group (children it
    forked), else the process alone; none when it is gone."""
    group, _ticks = stats.get(pid, (0, 0))
    if group == pid:
        return [member for member, (g, _) in stats.items() if g == group]
    return [pid] if pid in stats else []


def cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process, read from ``/proc``; a process group
    leader counts its whole group (children it forked). 0.0 for a process that is gone."""
    stats = _proc_stats()
    return {name: sum(stats[member][1] for member in _counted(stats, pid)) / CLOCK_TICKS_PER_S
            for name, pid in pids.items()}


def parse_switches(status_text: str) -> int:
    """Voluntary plus involuntary context switches from one ``/proc/.../status`` text."""
    total = 0
    for line in status_text.splitlines():
        if "ctxt_switches:" in line:
            total += int(line.split(":", 1)[1])
    return total


def context_switches(pids: Mapping[str, int]) -> dict[str, int]:
    """Context switches so far of every thread of each named process (a wake-up count: a
    thread that sleeps on a socket, a timer or a lock and is woken again counts one); a process
    group leader counts its whole group, as :func:`cpu_seconds` does. Why: the CPU a message
    costs grows with how often each process is woken for it, which a steady rate does far more
    than a burst (docs/performance.md#a-steady-rate). 0 for a gone process."""
    stats = _proc_stats()
    return {name: sum(_thread_switches(member) for member in _counted(stats, pid))
            for name, pid in pids.items()}


def _thread_switches(pid: int) -> int:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # gone
        return 0
    count = 0
    for task in tasks:
        try:
            count += parse_switches((task / "status").read_text())
        except (OSError, ValueError):
            pass  # the thread ended meanwhile
    return count


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` here (e.g. the Kafka broker), found
    through ``/proc/net/tcp*`` and the processes' socket fds; None if none can be seen."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir() if inodes else ():
        if entry.name.isdigit() and inodes.intersection(_fd_targets(entry)):
            return int(entry.name)
    return None


def _fd_targets(process: Path) -> Iterator[str]:
    """What the open file descriptors of ``/proc/<pid>`` point at. An fd closed while it is
    read is skipped, not the process: a broker opens and closes sockets all the time, and
    dropping the whole process on one such race left the benchmarks without its CPU."""
    try:
        fds = list((process / "fd").iterdir())
    except OSError:  # gone, or not ours to read
        return
    for fd in fds:
        try:
            yield os.readlink(fd)
        except OSError:
            continue


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")


#: The worker shapes the demo and the benchmarks offer (``--roles split|all``): a routing and
#: a delivery worker (pipeline/roles.py), or one worker of every stage.
WORKER_SHAPES: dict[str, tuple[WorkerRole, ...]] = {
    "split": ("routing", "delivery"),
    "all": ("all",),
}

@dataclass
class LocalStack:
    """Simulator + worker + sender as child processes, stopped in reverse order on exit."""

    home: Path
    env: dict[str, str]
    sim_config: Path
    sim_port: int = 2775
    workers: int = 1
    """Worker processes per role of ``worker_roles``."""
    worker_roles: tuple[WorkerRole, ...] = ("all",)
    """``("all",)``: every worker runs every stage; ``("routing", "delivery")``: the split
    (pipeline/roles.py), ``workers`` of each."""
    senders: int = 1
    """Sender replicas in one consumer group; with more than one they are named ``sender-<i>``
    and serve no metrics page (they would all want the same port)."""
    simulator: bool = True
    """Start ``smsflow smsc-sim`` on ``sim_port``; False when the caller runs the SMSC there
    (an in-process ``SimulatorThread`` whose counters and outages a drill drives)."""
    processes: list[ManagedProcess] = field(default_factory=list)

    def smsflow_argv(self) -> list[str]:
        """The command line that runs ``smsflow`` in this stack's interpreter."""
        return [sys.executable, "-m", "smsflow.cli"]

    def _smsflow(self, *args: str) -> list[str]:
        return [*self.smsflow_argv(), *args]

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()  # e.g. the simulator never listened: no worker is left running
            raise

    def _start(self) -> None:
        logs = self.home / "logs"
        if self.simulator:
            sim = ManagedProcess(
                "smsc-sim",
                self._smsflow("smsc-sim", "--config", str(self.sim_config), "--port",
                              str(self.sim_port)),
                logs / "smsc-sim.log",
            )
            sim.start(self.env)
            self.processes.append(sim)
        # The workers never talk to the SMSC: they start while the simulator comes up (their
        # start-up is the longest). The senders bind at once, so they wait for its port.
        for role in self.worker_roles:
            for _ in range(self.workers):
                self.add_worker(role)
        wait_for_port("127.0.0.1", self.sim_port, 20)
        for index in range(self.senders):
            self.add_sender("sender" if self.senders == 1 else f"sender-{index}")

    def add_sender(self, name: str = "sender", **extra_env: str) -> str:
        """Start one more sender (in the senders' group) named ``name``; ``extra_env`` is
        added to its environment only (e.g. a test-only fault). Returns its name."""
        argv = self._smsflow("sender", *(("--metrics-port", "0") if self.senders != 1 else ()))
        sender = ManagedProcess(name, argv, self.home / "logs" / f"{name}.log")
        sender.start({**self.env, **extra_env})
        self.processes.append(sender)
        return sender.name

    def add_worker(self, role: WorkerRole = "all", /, **extra_env: str) -> str:
        """Start one more worker of ``role`` in its consumer group (scale out); returns its
        name (``worker-<i>``, or ``worker-<role>-<i>`` for a split role). ``extra_env`` is
        added to its environment only (e.g. its own Kafka user)."""
        index = sum(1 for p in self.processes if p.name.startswith("worker-"))
        name = f"worker-{index}" if role == "all" else f"worker-{role}-{index}"
        worker = ManagedProcess(
            name,
            self._smsflow("worker", "--role", role, "--loglevel",
                          os.environ.get("SMSFLOW_STACK_WORKER_LOG_LEVEL", "warn")),
            self.home / "logs" / f"{name}.log",
        )
        worker.start({**self.env, **extra_env})
        self.processes.append(worker)
        return worker.name

    def stop_process(self, name: str) -> int | None:
        """Stop one process cleanly (SIGTERM; scale in) and forget it; returns its exit code."""
        process = next(p for p in self.processes if p.name == name)
        code = process.stop()
        self.processes.remove(process)
        return code

    def crash_and_restart(self, name: str) -> None:
        """SIGKILL one process (no clean shutdown: a crash) and start it again: for drills."""
        process = self._crash(name)
        process.start(self.env)

    def kill_process(self, name: str) -> int | None:
        """SIGKILL one process (a crash) and forget it, leaving its work to the rest of its
        group; returns its pid."""
        process = self._crash(name)
        self.processes.remove(process)
        return process.process.pid if process.process else None

    def _crash(self, name: str) -> ManagedProcess:
        process = next(p for p in self.processes if p.name == name)
        if process.process is not None and process.process.poll() is None:
            os.killpg(process.process.pid, signal.SIGKILL)
            process.process.wait(10)
        return process

    def pids(self) -> dict[str, int]:
        """Running processes by name (``smsc-sim``, ``worker-0``, …, ``sender``)."""
        return {p.name: p.process.pid for p in self.processes if p.process and p.alive()}

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.alive():
                raise RuntimeError(
                    f"{process.name} exited ({process.process and process.process.returncode})"
                    f"; last log lines:\n{process.log_tail()}"
                )

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
