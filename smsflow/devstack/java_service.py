"""A Java server fetched from Maven Central and run on loopback: the life cycle that the local
Kafka broker (:mod:`.broker`) and the local schema registry (:mod:`.schema_registry`) share.

Theory of operation
-------------------
A subclass says *what* to run; this module says *how* to run it safely on a shared machine:

1. **Install** (:meth:`LocalJavaService.ensure_installed`): unless the install directory is
   complete (a marker listing its jars, written last, and every listed jar on disk), take an
   exclusive ``flock`` on ``<install dir>/.lock`` and let the subclass download it
   (:meth:`~LocalJavaService._download`, with :func:`run_maven` and :func:`publish_complete`).
   A concurrent caller waits on the lock and then finds the work done; a half-finished
   directory is redone.
2. **Start** (:meth:`~LocalJavaService.start`), under ``<state dir>/.lock``: if this home's
   server already runs, adopt it (after checking it listens where we were asked to); else refuse
   ports that something else holds, install, let the subclass prepare its files
   (:meth:`~LocalJavaService._prepare`), launch the JVM in a new session (it outlives the CLI
   and ignores the terminal's Ctrl-C) with its pid in a pid file, and wait until the
   subclass's readiness probe (:meth:`~LocalJavaService._serves`) answers. If the JVM dies or
   the deadline passes, it is stopped and the error carries the log tail.
3. **Stop** (:meth:`~LocalJavaService.stop`): SIGTERM, wait, SIGKILL as a last resort.

A pid from the pid file is trusted only while ``/proc/<pid>/cmdline`` is this home's server
(:meth:`~LocalJavaService._owns_cmdline`): a stale pid file or a recycled pid never makes us
signal a stranger.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from smsflow.devstack.lifeline import start_guard
from smsflow.domain.errors import SmsflowError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
ENV_HOME = "SMSFLOW_HOME"
ENV_CACHE = "SMSFLOW_KAFKA_CACHE"
COMPLETE_MARKER = ".smsflow-complete"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
MAVEN_TIMEOUT_S = 900.0
DEFAULT_STOP_TIMEOUT_S = 30.0

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3
"""``status`` exit code when the server is down (LSB's "program is not running")."""


class JavaServiceError(SmsflowError, RuntimeError):
    """A local Java service could not be installed, started or stopped; the message says why."""


Command = Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------------------------
# Pure helpers: paths, environment, install bookkeeping (unit-tested without a JVM)
# --------------------------------------------------------------------------------------------


def default_home() -> Path:
    """``$SMSFLOW_HOME`` or ``./.smsflow`` relative to the current directory."""
    return Path(os.environ.get(ENV_HOME) or ".smsflow").absolute()


def default_cache_root() -> Path:
    """``$SMSFLOW_KAFKA_CACHE`` or ``~/.cache/smsflow``: where downloaded servers are kept."""
    override = os.environ.get(ENV_CACHE)
    return Path(override).absolute() if override else Path.home() / ".cache" / "smsflow"


def env_port(name: str, default: int, error: type[JavaServiceError]) -> int:
    """The port in environment variable ``name``, or ``default`` when it is unset or empty."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise error(f"{name}={raw!r} is not a port number") from None


def libs_complete(libs_dir: Path) -> bool:
    """True when the marker exists and every jar it lists is on disk."""
    marker = libs_dir / COMPLETE_MARKER
    if not marker.is_file():
        return False
    names = [n for n in marker.read_text(encoding="utf-8").splitlines() if n.strip()]
    return bool(names) and all((libs_dir / name).is_file() for name in names)


def publish_complete(partial: Path, target: Path, names: Sequence[str]) -> None:
    """Mark ``partial`` complete (listing ``names``) and move it to ``target``: the marker is
    written last, so a crash before this leaves a directory that :func:`libs_complete` rejects."""
    (partial / COMPLETE_MARKER).write_text("\n".join(names) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a (possibly large) log file; empty if it does not exist."""
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Exclusive advisory lock, released on exit (and by the kernel if we die)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_executable(name: str, env_home: str | None, error: type[JavaServiceError]) -> str:
    """``$<TOOL>_HOME/bin/<name>`` when that is set and exists, else ``name`` on ``PATH``."""
    if env_home:
        candidate = Path(env_home) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise error(f"`{name}` not found on PATH; the local dev stack needs it")
    return found


def run_maven(
    pom: Path, goal: Sequence[str], *, what: str, error: type[JavaServiceError]
) -> None:
    """Run ``mvn -q -B -f <pom> <goal…>``; a failure raises ``error`` with Maven's last lines."""
    command = [find_executable("mvn", os.environ.get("MAVEN_HOME"), error),
               "-q", "-B", "-f", str(pom), *goal]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise error(f"Maven did not finish within {MAVEN_TIMEOUT_S:.0f} s") from None
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise error(f"Maven could not fetch {what} (exit {result.returncode}):\n{output}")


def _state_and_parent(pid: int) -> tuple[str, str] | None:
    """The state letter and parent pid from /proc/<pid>/stat; None when the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    state, ppid = stat.rpartition(")")[2].split()[:2]
    return state, ppid


def _is_zombie(pid: int) -> bool:
    found = _state_and_parent(pid)
    return found is not None and found[0] in ("Z", "X", "x")


def _exiting_not_zombie(pid: int) -> bool:
    """For a pid whose cmdline reads empty: True while it is still exiting. The kernel empties
    the cmdline of a killed process before it becomes a zombie; calling it dead in that window
    lets its parent's ``poll()`` still answer "running". Kernel threads (parent kthreadd, pid 2)
    also have an empty cmdline and are never ours."""
    found = _state_and_parent(pid)
    return found is not None and found[0] not in ("Z", "X", "x") and found[1] != "2"


def pid_exists(pid: int) -> bool:
    """True while a process with this pid exists (another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------------------------
# The life cycle
# --------------------------------------------------------------------------------------------


class LocalJavaService(abc.ABC):
    """One server under ``<home>/<state dir>``, installed under ``install_dir``; see the module
    docstring for the life cycle. Subclasses fill in the abstract members."""

    label: ClassVar[str]
    """How messages name the server, e.g. ``"Kafka"``."""
    version: ClassVar[str]
    error: ClassVar[type[JavaServiceError]]
    port_advice: ClassVar[str]
    """What to do when a port is taken (which flags or variables move it)."""
    poll_s: ClassVar[float] = 0.2
    """Poll interval of the wait loops: short enough that start/stop return promptly, long
    enough not to busy-spin a core that the JVM needs while it boots."""

    def __init__(self, home: Path | None, port: int, install_dir: Path) -> None:
        self.home = (home or default_home()).absolute()
        self.port = port
        self.install_dir = install_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self.launched = False
        """True once :meth:`start` of *this* object launched the JVM (not adopted a running one)."""
        self.exit_with_starter = False
        """Stop a JVM this object launches once this process is gone (a guard process,
        :func:`~.lifeline.start_guard`): for throwaway servers of a test or benchmark. Off for
        the shared broker and registry, and for the CLI's ``start``, whose JVM outlives it on
        purpose."""
        self._guard: subprocess.Popen[bytes] | None = None

    # -- what the subclass says ----------------------------------------------------------------

    @property
    @abc.abstractmethod
    def state_dir(self) -> Path:
        """This home's directory for the server: pid file, lock, data, logs."""

    @property
    @abc.abstractmethod
    def installed_dir(self) -> Path:
        """The directory :meth:`ensure_installed` makes complete."""

    @property
    @abc.abstractmethod
    def pid_file(self) -> Path:
        """Holds the launched JVM's pid (trusted only while its cmdline is ours)."""

    @property
    @abc.abstractmethod
    def console_log(self) -> Path:
        """Where the JVM's stdout and stderr go."""

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """Where the server listens once started with this object's settings."""

    @abc.abstractmethod
    def running_address(self) -> str | None:
        """Where the running server of this home listens (it may differ from :attr:`address`),
        None when none runs."""

    @abc.abstractmethod
    def ports(self) -> tuple[int, ...]:
        """Every port the server will listen on (checked free before a launch)."""

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The JVM's command line."""

    @abc.abstractmethod
    def _download(self) -> None:
        """Fetch the server into :attr:`installed_dir` (called under the install lock)."""

    @abc.abstractmethod
    def _owns_cmdline(self, args: Sequence[str]) -> bool:
        """Whether a process with these arguments is this home's server."""

    @abc.abstractmethod
    def _serves(self, address: str, timeout_s: float) -> bool:
        """The readiness probe: whether the server at ``address`` answers requests."""

    def _prepare(self) -> None:
        """Write what the launch needs (directories, config files); called under the lock."""
        self.console_log.parent.mkdir(parents=True, exist_ok=True)

    def is_running(self) -> bool:
        """This home's server process is alive and answers where it was started."""
        address = self.running_address()
        return address is not None and self._serves(address, 2.0)

    def current_address(self) -> str:
        """Where clients should go: the running server's address, else the configured one."""
        return self.running_address() or self.address

    def summary(self) -> str:
        """What ``status`` prints about a running server, after its pid."""
        return f"{self.current_address()}, {self.label} {self.version}"

    def log_tail(self, lines: int = 40) -> str:
        text = tail(self.console_log, lines)
        return f"--- {self.console_log} (last {lines} lines) ---\n{text}" if text else "(no log)"

    def java(self) -> str:
        return find_executable("java", os.environ.get("JAVA_HOME"), self.error)

    # -- install -------------------------------------------------------------------------------

    def ensure_installed(self) -> Path:
        """Download the server unless a complete copy is cached; returns its directory."""
        if libs_complete(self.installed_dir):
            return self.installed_dir
        with locked(self.install_dir / ".lock"):
            if not libs_complete(self.installed_dir):  # another process may have finished
                self._download()
        return self.installed_dir

    # -- state ---------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of this home's server if that process is alive, else None."""
        if self._proc is not None:
            self._alive(self._proc.pid)  # our child ended (another caller stopped it): reap it
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        return pid if self._alive(pid) else None

    def _alive(self, pid: int) -> bool:
        """Liveness of a server pid; our own child is asked directly (and reaped when it exits).

        Right after ``Popen`` the child may not have exec'd java yet, so its cmdline is still
        python's: for our own child, ``poll()`` is the only reliable answer.
        """
        if self._proc is not None and self._proc.pid == pid:
            if self._proc.poll() is None:
                if not _is_zombie(pid):
                    return True
                # /proc may show the zombie a moment before waitpid(WNOHANG) reports it (seen
                # when another caller killed it): reap it with a blocking wait.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=10.0)
            self._proc = None
            return False
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # gone (or no procfs): fall back to "does the pid exist"
            return sys.platform != "linux" and pid_exists(pid)
        if not raw:  # a zombie, or a process still exiting (killed, not yet a zombie)
            return _exiting_not_zombie(pid)
        return self._owns_cmdline(raw.decode(errors="replace").split("\0"))

    # -- start ---------------------------------------------------------------------------------

    def start(self, timeout_s: float) -> str:
        """Start the server unless it runs already; return its address once it is ready."""
        with locked(self.state_dir / ".lock"):
            pid = self.pid()
            if pid is not None:
                return self._adopt_running(pid, timeout_s)
            self.pid_file.unlink(missing_ok=True)  # stale: its process is gone
            for port in self.ports():
                if port_open(HOST, port):
                    raise self.error(
                        f"port {HOST}:{port} is already in use by another process. "
                        f"{self.port_advice}"
                    )
            self.ensure_installed()
            self._prepare()
            self._launch()
            return self._await_ready(timeout_s)

    def _adopt_running(self, pid: int, timeout_s: float) -> str:
        running = self.running_address()
        if running != self.address:
            raise self.error(
                f"{self.label} of {self.home} already runs (pid {pid}) on {running}, not on "
                f"{self.address}; stop it first to change ports"
            )
        log.info("%s already running (pid %d) on %s", self.label, pid, running)
        # It may still be booting (started by a concurrent caller): wait for it to serve.
        self._wait_serving(timeout_s, pid)
        return running

    def _launch(self) -> None:
        log.info("starting %s %s on %s (log: %s)", self.label, self.version, self.address,
                 self.console_log)
        with self.console_log.open("ab") as out:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,  # detached: survives the CLI, ignores its Ctrl-C
                close_fds=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n", encoding="utf-8")
        self.launched = True
        if self.exit_with_starter:
            self._reap_guard()  # of an earlier launch (a node killed and restarted)
            self._guard = start_guard(self._proc.pid)

    def _await_ready(self, timeout_s: float) -> str:
        if self._proc is None:
            raise self.error(f"internal error: no {self.label} process to wait for")
        pid = self._proc.pid
        started = time.monotonic()
        try:
            self._wait_serving(timeout_s, pid)
        except JavaServiceError:
            self._terminate(pid, DEFAULT_STOP_TIMEOUT_S)
            self.pid_file.unlink(missing_ok=True)
            raise
        log.info("%s ready on %s (pid %d, %.1f s)", self.label, self.address, pid,
                 time.monotonic() - started)
        return self.address

    def _wait_serving(self, timeout_s: float, pid: int) -> None:
        """Block until the readiness probe answers; raise if the JVM dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self._alive(pid):
                raise self.error(f"{self.label} exited during start-up.\n{self.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.error(
                    f"{self.label} did not answer on {self.address} within {timeout_s:.0f} s.\n"
                    f"{self.log_tail()}"
                )
            if port_open(HOST, self.port) and self._serves(self.address, min(2.0, remaining)):
                return
            time.sleep(self.poll_s)  # the JVM is still booting

    # -- stop ----------------------------------------------------------------------------------

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> bool:
        """Stop the server if it runs; True if a process was stopped. Idempotent."""
        if not self.state_dir.is_dir():
            return False  # never set up here: nothing to stop, and nothing to create
        with locked(self.state_dir / ".lock"):
            pid = self.pid()
            if pid is not None:
                log.info("stopping %s (pid %d)", self.label, pid)
                self._terminate(pid, timeout_s)
            self.pid_file.unlink(missing_ok=True)
            return pid is not None

    def kill(self) -> int | None:
        """SIGKILL the server (a crash, no clean shutdown: for failure drills); returns the pid
        it killed, None when none ran. The pid file stays: :meth:`pid` ignores a dead pid."""
        with locked(self.state_dir / ".lock"):
            pid = self.pid()
            if pid is None:
                return None
            log.info("killing %s (pid %d) with SIGKILL", self.label, pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 10.0):
                raise self.error(f"{self.label} (pid {pid}) survived SIGKILL")
            return pid

    def _terminate(self, pid: int, timeout_s: float) -> None:
        """SIGTERM (a clean shutdown), wait up to timeout_s, then SIGKILL."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._wait_exit(pid, timeout_s):
            return
        log.warning("%s (pid %d) ignored SIGTERM for %.0f s; killing it", self.label, pid,
                    timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_exit(pid, 10.0):
            raise self.error(f"{self.label} (pid {pid}) survived SIGKILL")

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_s)
        self._reap_guard()
        return True

    def _reap_guard(self) -> None:
        """End and reap the guard of a JVM that has ended (it would notice within a second;
        a stop or a drill's kill need not wait for that)."""
        if self._guard is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._guard.terminate()
        self._guard.wait(10.0)
        self._guard = None


# --------------------------------------------------------------------------------------------
# The ``start|stop|status`` commands every local service offers
# --------------------------------------------------------------------------------------------


def add_lifecycle_commands(
    subparsers: Any,
    name: str,
    *,
    common: argparse.ArgumentParser,
    help_text: str,
    description: str,
    start_timeout_s: float,
    commands: tuple[Command, Command, Command],
) -> Any:
    """Add ``smsflow <name> start|stop|status``; ``commands`` are their handlers, in that
    order, and ``common`` holds the options they share (``--home``, ports). Returns the
    actions' subparsers, to which a service may add more actions."""
    start, stop, status = commands
    parser = subparsers.add_parser(name, help=help_text, description=description)
    actions = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")

    start_parser = actions.add_parser(
        "start", parents=[common], help="start it (no-op if running)"
    )
    start_parser.add_argument("--timeout", type=float, default=start_timeout_s, help="seconds")
    start_parser.set_defaults(func=start)

    stop_parser = actions.add_parser("stop", parents=[common], help="stop it (no-op if stopped)")
    stop_parser.add_argument(
        "--timeout", type=float, default=DEFAULT_STOP_TIMEOUT_S, help="seconds"
    )
    stop_parser.set_defaults(func=stop)

    status_parser = actions.add_parser(
        "status", parents=[common], help="exit 0 if running, 3 if not"
    )
    status_parser.set_defaults(func=status)
    return actions


def home_option() -> argparse.ArgumentParser:
    """A parent parser with ``--home``, to which a service adds its port options."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", type=Path, default=None,
        help=f"state directory (default ${ENV_HOME} or ./.smsflow)",
    )
    return common


def setup_cli_logging(name: str) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=f"smsflow {name}: %(message)s")


def start_command(prog: str, start: Callable[[], str]) -> int:
    """Print what ``start`` returns (the address), or the error on stderr with exit 1."""
    try:
        print(start())
    except JavaServiceError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def stop_command(prog: str, service: Callable[[], LocalJavaService], timeout_s: float) -> int:
    try:
        stopped = service().stop(timeout_s)
    except JavaServiceError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print("stopped" if stopped else "not running")
    return EXIT_OK


def status_command(prog: str, service: Callable[[], LocalJavaService]) -> int:
    """Exit 0 when this home's server runs and answers, 3 when not."""
    try:
        server = service()
    except JavaServiceError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    pid = server.pid()
    if pid is None:
        print(f"not running (home {server.home})")
        return EXIT_NOT_RUNNING
    if not server.is_running():
        print(f"starting or unresponsive: pid {pid}, {server.current_address()} does not answer")
        return EXIT_NOT_RUNNING
    print(f"running: pid {pid}, {server.summary()}, home {server.home}")
    return EXIT_OK
