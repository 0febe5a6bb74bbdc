"""A real Confluent-compatible schema registry (no Docker): ``smsflow registry start|stop|status``.

Theory of operation
-------------------
Confluent's own registry is not on Maven Central, but Apicurio Registry is, and it serves the
Confluent Schema Registry REST API under ``/apis/ccompat/v7`` (Confluent clients and serdes work
against it unchanged). Its 2.x line is built for Java 11+, so it runs on the machine's Java 17
(Apicurio 3.x needs Java 21). So, following :mod:`smsflow.devstack.broker`:

1. **Install** (:meth:`LocalSchemaRegistry.ensure_installed`). A tiny pom
   (``smsflow/devstack/data/registry-pom.xml``) names the app's runnable distribution,
   ``io.apicurio:apicurio-registry-app:REGISTRY_VERSION:tar.gz:all`` (a Quarkus runner jar and its
   ``lib/``, 140 MB). The machine's ``mvn`` runs ``dependency:copy`` into
   ``<cache>/apicurio-registry-<version>/download``; it is unpacked (path-checked) into
   ``app.partial``, a marker listing the jars is written last, and the directory is renamed to
   ``app``. A complete ``app`` is never downloaded again; a half-finished one is redone.
2. **Run**: ``java -jar <app>/apicurio-registry-app-<version>-runner.jar`` with its Quarkus
   configuration as system properties: loopback only, the port, and H2 storage in a *file* under
   ``$SMSFLOW_HOME/registry/data`` (Apicurio's "in-memory" storage is H2; pointing its JDBC URL at
   a file keeps schemas and their ids across restarts, which records already in Kafka rely on).
   Started in a new session, stdout/stderr to ``logs/registry.out``, pid to ``registry.pid``.
   *Ready* means ``GET /apis/ccompat/v7/subjects`` answers 200 with a JSON list.
3. **Stop**: SIGTERM (Quarkus shuts down cleanly), wait, SIGKILL as a last resort.

A pid is trusted only while ``/proc/<pid>/cmdline`` shows the runner jar and *this* home's
``-Dsmsflow.registry.dir``. Install and start/stop each take an exclusive ``flock``.

Layout: ``$SMSFLOW_HOME/registry/`` (default ``./.smsflow/registry``) holds ``registry.pid``,
``data/`` (the H2 database) and ``logs/``. The distribution lives in
``<cache>/apicurio-registry-<version>/app`` where ``<cache>`` is the broker's cache root
(``$SMSFLOW_KAFKA_CACHE`` or ``~/.cache/smsflow``). The port is ``--port``,
``$SMSFLOW_SCHEMA_REGISTRY_PORT`` or 8081. Clients use :meth:`LocalSchemaRegistry.url`,
``http://127.0.0.1:<port>/apis/ccompat/v7``, as ``SMSFLOW_SCHEMA_REGISTRY_URL``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from smsflow.devstack.broker import (
    DEPENDENCY_PLUGIN_VERSION,
    default_cache_root,
    default_home,
    libs_complete,
    port_open,
    tail,
)

log = logging.getLogger(__name__)

REGISTRY_VERSION = "2.6.13.Final"
"""Apicurio Registry: the newest 2.x (Java 11+) with a runnable distribution on Maven Central."""
ARTIFACT = f"io.apicurio:apicurio-registry-app:{REGISTRY_VERSION}:tar.gz:all"
DIST_FILE = f"apicurio-registry-app-{REGISTRY_VERSION}-all.tar.gz"
RUNNER_JAR = f"apicurio-registry-app-{REGISTRY_VERSION}-runner.jar"
API_PATH = "/apis/ccompat/v7"
"""Apicurio's Confluent-compatible API root (what Confluent clients take as the registry URL)."""

HOST = "127.0.0.1"
DEFAULT_PORT = 8081
DEFAULT_START_TIMEOUT_S = 120.0
DEFAULT_STOP_TIMEOUT_S = 30.0
MAVEN_TIMEOUT_S = 900.0

ENV_PORT = "SMSFLOW_SCHEMA_REGISTRY_PORT"
ENV_URL = "SMSFLOW_SCHEMA_REGISTRY_URL"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3

COMPLETE_MARKER = ".smsflow-complete"
HOME_PROPERTY = "smsflow.registry.dir"

# A registry holds a few dozen schemas and answers a handful of requests per process (clients
# cache): a small heap, the serial collector (fewer threads, smaller footprint) and the C1 JIT
# only, which halves start-up (about 7 s instead of 11-15 s here) and resident memory
# (about 155 MB instead of 200 MB), on a 2-core machine that also runs Kafka and the workers.
HEAP_OPTS = ("-Xms64m", "-Xmx256m")
JVM_OPTS = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Djava.util.logging.manager=org.jboss.logmanager.LogManager",
)

_POLL_S = 0.25


class RegistryServerError(RuntimeError):
    """The local registry could not be installed, started or stopped; the message says why."""


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def env_port() -> int:
    raw = os.environ.get(ENV_PORT)
    if not raw:
        return DEFAULT_PORT
    try:
        return int(raw)
    except ValueError:
        raise RegistryServerError(f"{ENV_PORT}={raw!r} is not a port number") from None


def render_pom(registry_version: str = REGISTRY_VERSION) -> str:
    """The pom whose ``dependency:copy`` fetches the registry's distribution."""
    pom = resources.files("smsflow.devstack") / "data" / "registry-pom.xml"
    text = pom.read_text(encoding="utf-8")
    return Template(text).substitute(
        registry_version=registry_version,
        dependency_plugin_version=DEPENDENCY_PLUGIN_VERSION,
        dist_file=f"apicurio-registry-app-{registry_version}-all.tar.gz",
    )


def registry_properties(registry_dir: Path, port: int, host: str = HOST) -> dict[str, str]:
    """The Quarkus/Apicurio configuration, passed as ``-Dkey=value``."""
    data = registry_dir / "data"
    return {
        HOME_PROPERTY: str(registry_dir),  # identifies the process as this home's
        "quarkus.http.host": host,
        "quarkus.http.port": str(port),
        # Apicurio 2.x "in-memory" storage is H2 with this URL (default jdbc:h2:mem:registry_db).
        "REGISTRY_DATASOURCE_URL": f"jdbc:h2:file:{data}/registry",
        # Its prod profile opens 20 pooled connections up front; one is plenty here.
        "%prod.quarkus.datasource.jdbc.initial-size": "1",
        "%prod.quarkus.datasource.jdbc.min-size": "1",
        "%prod.quarkus.datasource.jdbc.max-size": "8",
    }


def api_url(port: int, host: str = HOST) -> str:
    return f"http://{host}:{port}{API_PATH}"


def _safe_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Members that stay inside the target (regular files and directories only)."""
    members = []
    for member in archive.getmembers():
        path = Path(member.name)
        if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
            raise RegistryServerError(f"refusing to unpack {member.name!r}: outside the target")
        members.append(member)
    return members


def unpack(archive_path: Path, target: Path) -> None:
    """Unpack a .tar.gz, refusing anything that would land outside ``target``."""
    with tarfile.open(archive_path, "r:gz") as archive:
        members = _safe_members(archive)
        if hasattr(tarfile, "data_filter"):
            archive.extractall(target, members=members, filter="data")
        else:  # Python < 3.11.4: members were checked above
            archive.extractall(target, members=members)  # noqa: S202


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _find_executable(name: str, env_home: str | None) -> str:
    if env_home:
        candidate = Path(env_home) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise RegistryServerError(f"`{name}` not found on PATH; the local schema registry needs it")
    return found


# Our registry is on loopback: never ask it through an http_proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _serves_api(url: str, timeout_s: float) -> bool:
    """True when ``GET <url>/subjects`` answers 200 with a JSON list."""
    try:
        with _DIRECT.open(url + "/subjects", timeout=timeout_s) as response:
            return isinstance(json.loads(response.read()), list)
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


class LocalSchemaRegistry:
    """One Apicurio Registry under ``<home>/registry``, driven from Python or the CLI."""

    def __init__(
        self, home: Path | None = None, port: int = DEFAULT_PORT, *, cache_dir: Path | None = None
    ) -> None:
        self.home = (home or default_home()).absolute()
        self.port = port
        root = (cache_dir or default_cache_root()).absolute()
        self.install_dir = root / f"apicurio-registry-{REGISTRY_VERSION}"
        self._proc: subprocess.Popen[bytes] | None = None
        self.launched = False
        """True once :meth:`start` of *this* object launched the JVM (not adopted a running one)."""

    @classmethod
    def from_env(cls, home: Path | None = None, port: int | None = None) -> LocalSchemaRegistry:
        """An explicit port wins, then ``$SMSFLOW_SCHEMA_REGISTRY_PORT``, then 8081."""
        return cls(home, port if port is not None else env_port())

    # -- paths ---------------------------------------------------------------------------------

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def data_dir(self) -> Path:
        return self.registry_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.registry_dir / "logs"

    @property
    def pid_file(self) -> Path:
        return self.registry_dir / "registry.pid"

    @property
    def port_file(self) -> Path:
        return self.registry_dir / "registry.port"

    @property
    def console_log(self) -> Path:
        return self.logs_dir / "registry.out"

    @property
    def app_dir(self) -> Path:
        return self.install_dir / "app"

    @property
    def runner_jar(self) -> Path:
        return self.app_dir / RUNNER_JAR

    @property
    def url(self) -> str:
        """The Confluent-compatible API root: the running registry's, else the configured one."""
        return api_url(self.running_port() or self.port)

    def is_this(self, url: str) -> bool:
        """Whether ``url`` names this registry (loopback, its port), e.g. in the environment."""
        parsed = urllib.parse.urlsplit(url)
        try:
            port = parsed.port
        except ValueError:
            return False
        loopback = parsed.hostname in ("127.0.0.1", "localhost", "::1")
        return loopback and port == (self.running_port() or self.port)

    # -- install -------------------------------------------------------------------------------

    def ensure_installed(self) -> Path:
        """Fetch and unpack the distribution unless a complete one is cached; returns its dir."""
        if libs_complete(self.app_dir):
            return self.app_dir
        with _locked(self.install_dir / ".lock"):
            if not libs_complete(self.app_dir):
                self._download()
        return self.app_dir

    def _download(self) -> None:
        partial = self.install_dir / "app.partial"
        download = self.install_dir / "download"
        for stale in (partial, download):
            shutil.rmtree(stale, ignore_errors=True)
        pom = self.install_dir / "pom.xml"
        pom.write_text(render_pom(), encoding="utf-8")
        log.info("downloading %s with Maven into %s", ARTIFACT, self.app_dir)
        started = time.monotonic()
        self._run_maven(pom, download)
        archive = download / DIST_FILE
        if not archive.is_file():
            raise RegistryServerError(f"Maven finished but {archive} is missing")
        partial.mkdir(parents=True)
        unpack(archive, partial)
        if not (partial / RUNNER_JAR).is_file():
            raise RegistryServerError(f"{DIST_FILE} has no {RUNNER_JAR}")
        names = [RUNNER_JAR, *sorted(f"lib/{p.name}" for p in (partial / "lib").glob("*.jar"))]
        (partial / COMPLETE_MARKER).write_text("\n".join(names) + "\n", encoding="utf-8")
        shutil.rmtree(self.app_dir, ignore_errors=True)
        partial.rename(self.app_dir)
        shutil.rmtree(download, ignore_errors=True)  # Maven's local repository keeps a copy
        log.info("%d jars ready in %.1f s", len(names), time.monotonic() - started)

    def _run_maven(self, pom: Path, output_dir: Path) -> None:
        command = [
            _find_executable("mvn", os.environ.get("MAVEN_HOME")),
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy",
            f"-DoutputDirectory={output_dir}",
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise RegistryServerError(
                f"Maven did not finish within {MAVEN_TIMEOUT_S:.0f} s"
            ) from None
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise RegistryServerError(
                f"Maven could not fetch {ARTIFACT} (exit {result.returncode}):\n{output}"
            )

    # -- state ---------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of this home's registry if that process is alive, else None."""
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        return pid if self._alive(pid) else None

    def running_port(self) -> int | None:
        """The port the running registry was started with (it may differ from self.port)."""
        if self.pid() is None:
            return None
        try:
            return int(self.port_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        """Process alive and its API answers."""
        port = self.running_port()
        return port is not None and _serves_api(api_url(port), 2.0)

    def log_tail(self, lines: int = 40) -> str:
        text = tail(self.console_log, lines)
        return f"--- {self.console_log} (last {lines} lines) ---\n{text}" if text else "(no log)"

    def _is_our_registry(self, pid: int) -> bool:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        args = raw.decode(errors="replace").split("\0")
        return str(self.runner_jar) in args and f"-D{HOME_PROPERTY}={self.registry_dir}" in args

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            if self._proc.poll() is None:
                return True
            self._proc = None
            return False
        return self._is_our_registry(pid)

    # -- start ---------------------------------------------------------------------------------

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> str:
        """Start the registry unless it runs already; return its API URL once it answers."""
        with _locked(self.registry_dir / ".lock"):
            pid = self.pid()
            if pid is not None:
                return self._adopt_running(pid, timeout_s)
            self.pid_file.unlink(missing_ok=True)  # stale: its process is gone
            if port_open(HOST, self.port):
                raise RegistryServerError(
                    f"port {HOST}:{self.port} is already in use by another process. Choose "
                    f"another (--port or {ENV_PORT})"
                )
            self.ensure_installed()
            for directory in (self.data_dir, self.logs_dir):
                directory.mkdir(parents=True, exist_ok=True)
            self._launch()
            return self._await_ready(timeout_s)

    def _adopt_running(self, pid: int, timeout_s: float) -> str:
        port = self.running_port()
        if port != self.port:
            raise RegistryServerError(
                f"the registry of {self.home} already runs (pid {pid}) on port {port}, not "
                f"{self.port}; stop it first to change ports"
            )
        log.info("schema registry already running (pid %d) on %s", pid, self.url)
        self._wait_serving(timeout_s, pid)
        return self.url

    def command(self) -> list[str]:
        props = registry_properties(self.registry_dir, self.port)
        return [
            _find_executable("java", os.environ.get("JAVA_HOME")),
            *HEAP_OPTS,
            *JVM_OPTS,
            *(f"-D{key}={value}" for key, value in props.items()),
            "-jar",
            str(self.runner_jar),
        ]

    def _launch(self) -> None:
        log.info(
            "starting Apicurio Registry %s on %s (log: %s)",
            REGISTRY_VERSION,
            api_url(self.port),
            self.console_log,
        )
        with self.console_log.open("ab") as out:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.registry_dir,
                start_new_session=True,
                close_fds=True,
            )
        self.port_file.write_text(f"{self.port}\n", encoding="utf-8")
        self.pid_file.write_text(f"{self._proc.pid}\n", encoding="utf-8")
        self.launched = True

    def _await_ready(self, timeout_s: float) -> str:
        if self._proc is None:
            raise RegistryServerError("internal error: no registry process to wait for")
        pid = self._proc.pid
        started = time.monotonic()
        try:
            self._wait_serving(timeout_s, pid)
        except RegistryServerError:
            self._terminate(pid, DEFAULT_STOP_TIMEOUT_S)
            self.pid_file.unlink(missing_ok=True)
            raise
        log.info(
            "schema registry ready on %s (pid %d, %.1f s)",
            self.url,
            pid,
            time.monotonic() - started,
        )
        return self.url

    def _wait_serving(self, timeout_s: float, pid: int) -> None:
        deadline = time.monotonic() + timeout_s
        url = api_url(self.port)
        while True:
            if not self._alive(pid):
                raise RegistryServerError(
                    f"the registry exited during start-up.\n{self.log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RegistryServerError(
                    f"the registry did not answer on {url} within {timeout_s:.0f} s.\n"
                    f"{self.log_tail()}"
                )
            if port_open(HOST, self.port) and _serves_api(url, min(2.0, remaining)):
                return
            time.sleep(_POLL_S)  # the JVM is still booting

    # -- stop ----------------------------------------------------------------------------------

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> bool:
        """Stop the registry if it runs; True if a process was stopped. Idempotent."""
        if not self.registry_dir.is_dir():
            return False
        with _locked(self.registry_dir / ".lock"):
            pid = self.pid()
            if pid is not None:
                log.info("stopping the schema registry (pid %d)", pid)
                self._terminate(pid, timeout_s)
            self.pid_file.unlink(missing_ok=True)
            return pid is not None

    def _terminate(self, pid: int, timeout_s: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._wait_exit(pid, timeout_s):
            return
        log.warning("the registry (pid %d) ignored SIGTERM for %.0f s; killing it", pid, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_exit(pid, 10.0):
            raise RegistryServerError(f"the registry (pid {pid}) survived SIGKILL")

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``smsflow registry start|stop|status``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home",
        type=Path,
        default=None,
        help="state directory (default $SMSFLOW_HOME or ./.smsflow)",
    )
    common.add_argument(
        "--port", type=int, default=None, help=f"HTTP port (default ${ENV_PORT} or {DEFAULT_PORT})"
    )
    parser = subparsers.add_parser(
        "registry",
        help="run a local Confluent-compatible schema registry (Apicurio, no Docker)",
        description=f"Apicurio Registry {REGISTRY_VERSION} on loopback, fetched with Maven; "
        f"its Confluent-compatible API is at http://127.0.0.1:PORT{API_PATH}.",
    )
    actions = parser.add_subparsers(dest="registry_command", required=True, metavar="ACTION")

    start = actions.add_parser("start", parents=[common], help="start it (no-op if running)")
    start.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT_S, help="seconds")
    start.set_defaults(func=_cmd_start)

    stop = actions.add_parser("stop", parents=[common], help="stop it (no-op if stopped)")
    stop.add_argument("--timeout", type=float, default=DEFAULT_STOP_TIMEOUT_S, help="seconds")
    stop.set_defaults(func=_cmd_stop)

    status = actions.add_parser("status", parents=[common], help="exit 0 if running, 3 if not")
    status.set_defaults(func=_cmd_status)


def _registry_from_args(args: argparse.Namespace) -> LocalSchemaRegistry:
    return LocalSchemaRegistry.from_env(args.home, args.port)


def _setup_cli_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="smsflow registry: %(message)s")


def _cmd_start(args: argparse.Namespace) -> int:
    _setup_cli_logging()
    try:
        registry = _registry_from_args(args)
        url = registry.start(args.timeout)
    except RegistryServerError as exc:
        print(f"smsflow registry start: {exc}", file=sys.stderr)
        return EXIT_ERROR
    configured = os.environ.get(ENV_URL, "").strip()
    if configured and not registry.is_this(configured):
        log.warning("%s=%s points elsewhere: clients use that, not this one", ENV_URL, configured)
    print(url)
    return EXIT_OK


def _cmd_stop(args: argparse.Namespace) -> int:
    _setup_cli_logging()
    try:
        stopped = _registry_from_args(args).stop(args.timeout)
    except RegistryServerError as exc:
        print(f"smsflow registry stop: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print("stopped" if stopped else "not running")
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    try:
        registry = _registry_from_args(args)
    except RegistryServerError as exc:
        print(f"smsflow registry status: {exc}", file=sys.stderr)
        return EXIT_ERROR
    pid = registry.pid()
    if pid is None:
        print(f"not running (home {registry.home})")
        return EXIT_NOT_RUNNING
    if not registry.is_running():
        print(f"starting or unresponsive: pid {pid}, {registry.url} does not answer")
        return EXIT_NOT_RUNNING
    print(
        f"running: pid {pid}, url {registry.url}, Apicurio Registry {REGISTRY_VERSION}, "
        f"home {registry.home}"
    )
    return EXIT_OK
