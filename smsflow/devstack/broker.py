"""A real Apache Kafka broker on this machine, without Docker: ``smsflow broker start|stop|status``.

Theory of operation
-------------------
Kafka is a set of jars on Maven Central and a JVM is all it needs to run, so:

1. **Install** (:meth:`LocalBroker.ensure_installed`). A tiny pom
   (``smsflow/devstack/data/kafka-pom.xml``) depends on
   ``org.apache.kafka:kafka_2.13:KAFKA_VERSION`` plus the slf4j->log4j2 binding that the Kafka
   tarball adds but the Maven artifact does not declare. The machine's ``mvn`` runs
   ``dependency:copy-dependencies`` into ``<cache>/kafka-<version>/libs.partial``; a marker listing
   the jars is written last and the directory is renamed to ``libs``. A complete ``libs`` (marker
   present, every listed jar on disk) is never downloaded again; a half-finished one is redone.
2. **Configure**. ``server.properties`` is written on every start (it only derives from the
   ports and paths): one KRaft node that is broker *and* controller, listening on loopback only,
   with a static single-voter quorum (``controller.quorum.voters``), replication factors of 1 and
   no topic auto-creation. The log4j2 config (``smsflow/devstack/data/kafka-log4j2.xml``) is
   copied beside.
3. **Format** once: ``kafka.tools.StorageTool format`` with a fresh cluster id writes
   ``meta.properties`` into the data directory; its presence means "formatted", so data and the
   cluster id survive restarts.
4. **Run**: ``java -cp 'libs/*' kafka.Kafka server.properties`` in a new session (so it outlives
   the CLI and ignores the terminal's Ctrl-C), stdout/stderr to ``logs/kafka.out``, the pid to
   ``kafka.pid``. *Ready* means a metadata request (confluent-kafka ``AdminClient.list_topics``)
   lists a broker. If the JVM dies or the deadline passes, the error carries the log tail.
5. **Stop**: SIGTERM (Kafka's controlled shutdown), wait, SIGKILL as a last resort.

A pid is trusted only while ``/proc/<pid>/cmdline`` shows ``kafka.Kafka`` with *this* home's
``server.properties``: a stale pid file or a recycled pid never makes us signal a stranger.
Install and start/stop each take an exclusive ``flock``, so concurrent callers (two test sessions,
a CLI and a fixture) queue instead of racing; the second one finds the work done.

Layout: ``$SMSFLOW_HOME/kafka/`` (default ``./.smsflow/kafka``) holds ``server.properties``,
``log4j2.xml``, ``kafka.pid``, ``data/`` (topic logs and KRaft metadata) and ``logs/``.
Jars live in ``$SMSFLOW_KAFKA_CACHE/kafka-<version>/libs`` (default ``~/.cache/smsflow``).
``SMSFLOW_KAFKA_BOOTSTRAP`` means "use that existing cluster": nothing local is started.
"""

from __future__ import annotations

import argparse
import base64
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
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.2"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.25.3"
"""Must equal the log4j-core version that KAFKA_VERSION depends on (the binding is added by us)."""
DEPENDENCY_PLUGIN_VERSION = "3.8.1"

HOST = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_START_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 30.0
MAVEN_TIMEOUT_S = 900.0
FORMAT_TIMEOUT_S = 120.0

ENV_HOME = "SMSFLOW_HOME"
ENV_CACHE = "SMSFLOW_KAFKA_CACHE"
ENV_BOOTSTRAP = "SMSFLOW_KAFKA_BOOTSTRAP"
ENV_PORT = "SMSFLOW_KAFKA_PORT"
ENV_CONTROLLER_PORT = "SMSFLOW_KAFKA_CONTROLLER_PORT"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3
"""``status`` exit code when the broker is down (LSB's "program is not running")."""

KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
COMPLETE_MARKER = ".smsflow-complete"

# Small heap: a dev broker holds little, and a 2-core machine also runs the workers and tests.
HEAP_OPTS = ("-Xms256m", "-Xmx512m")
# The GC flags of Kafka's own kafka-run-class.sh.
JVM_OPTS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
TOOL_HEAP_OPTS = ("-Xmx256m",)

# Poll intervals of the wait loops: short enough that start/stop return promptly, long enough not
# to busy-spin a core that the JVM needs while it boots.
_POLL_S = 0.2


class BrokerError(RuntimeError):
    """The local broker could not be installed, started or stopped; the message says why."""


# --------------------------------------------------------------------------------------------
# Pure helpers: paths, environment, rendering (unit-tested without a broker)
# --------------------------------------------------------------------------------------------


def default_home() -> Path:
    """``$SMSFLOW_HOME`` or ``./.smsflow`` relative to the current directory."""
    return Path(os.environ.get(ENV_HOME) or ".smsflow").absolute()


def default_cache_root() -> Path:
    """``$SMSFLOW_KAFKA_CACHE`` or ``~/.cache/smsflow``; jars go in ``kafka-<version>/libs``."""
    override = os.environ.get(ENV_CACHE)
    return Path(override).absolute() if override else Path.home() / ".cache" / "smsflow"


def resolve_bootstrap() -> str | None:
    """The external cluster named by ``$SMSFLOW_KAFKA_BOOTSTRAP``, or None to use a local broker."""
    value = os.environ.get(ENV_BOOTSTRAP, "").strip()
    return value or None


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BrokerError(f"{name}={raw!r} is not a port number") from None


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")


def _data_text(name: str) -> str:
    return (resources.files("smsflow.devstack") / "data" / name).read_text(encoding="utf-8")


def render_pom(
    kafka_version: str = KAFKA_VERSION,
    log4j_version: str = LOG4J_VERSION,
    scala_version: str = SCALA_VERSION,
) -> str:
    """The pom whose runtime dependency closure is exactly the broker's classpath."""
    return Template(_data_text("kafka-pom.xml")).substitute(
        kafka_version=kafka_version,
        log4j_version=log4j_version,
        scala_version=scala_version,
        dependency_plugin_version=DEPENDENCY_PLUGIN_VERSION,
    )


@dataclass(frozen=True)
class BrokerConfig:
    """What ``server.properties`` is derived from."""

    data_dir: Path
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    host: str = HOST
    node_id: int = 1

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def properties(self) -> dict[str, str]:
        if self.port == self.controller_port:
            raise BrokerError(f"broker and controller cannot share port {self.port}")
        return {
            # One KRaft node that is its own controller; a static one-voter quorum, so the
            # controller port can change between runs without touching the formatted metadata.
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": f"{self.node_id}@{self.host}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},"
            f"CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # Topics are declared explicitly (smsflow topics apply, faust, fixtures): a typo in a
            # topic name must fail loudly instead of creating a stray topic.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # A consumer group forms at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": "0",
            # Internal topics on one node: replication 1, and few partitions (50 by default)
            # so the first group / first transaction does not create 50 logs on a 2-core box.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Fewer threads than the server defaults (3 network, 8 io): 2 cores.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
        }


def render_server_properties(config: BrokerConfig) -> str:
    lines = ["# Generated by `smsflow broker start` on every start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in config.properties().items()]
    return "\n".join(lines) + "\n"


def parse_properties(text: str) -> dict[str, str]:
    """Parse the simple ``key=value`` subset of Java properties that we write."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        result[key.strip()] = value.strip()
    return result


def bootstrap_from_properties(props: Mapping[str, str]) -> str | None:
    """The PLAINTEXT address a broker with these properties advertises."""
    for listener in props.get("advertised.listeners", props.get("listeners", "")).split(","):
        name, _, address = listener.partition("://")
        if name.strip() == "PLAINTEXT" and address:
            return address.strip()
    return None


def libs_complete(libs_dir: Path) -> bool:
    """True when the marker exists and every jar it lists is on disk."""
    marker = libs_dir / COMPLETE_MARKER
    if not marker.is_file():
        return False
    names = [n for n in marker.read_text(encoding="utf-8").splitlines() if n.strip()]
    return bool(names) and all((libs_dir / name).is_file() for name in names)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """Exclusive advisory lock, released on exit (and by the kernel if we die)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _find_executable(name: str, env_home: str | None = None) -> str:
    if env_home:
        candidate = Path(env_home) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise BrokerError(f"`{name}` not found on PATH; the local Kafka broker needs it")
    return found


# --------------------------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------------------------


class LocalBroker:
    """One single-node Kafka (KRaft) under ``<home>/kafka``, driven from Python or the CLI."""

    def __init__(
        self,
        home: Path | None = None,
        port: int = DEFAULT_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        *,
        cache_dir: Path | None = None,
    ) -> None:
        self.home = (home or default_home()).absolute()
        self.port = port
        self.controller_port = controller_port
        root = (cache_dir or default_cache_root()).absolute()
        self.install_dir = root / f"kafka-{KAFKA_VERSION}"
        self._proc: subprocess.Popen[bytes] | None = None
        self.launched = False
        """True once :meth:`start` of *this* object launched the JVM (not adopted a running one)."""

    @classmethod
    def from_env(
        cls, home: Path | None = None, port: int | None = None, controller_port: int | None = None
    ) -> LocalBroker:
        """Explicit arguments win, then ``SMSFLOW_KAFKA_PORT`` / ``..._CONTROLLER_PORT``."""
        return cls(
            home,
            port if port is not None else _env_port(ENV_PORT, DEFAULT_PORT),
            controller_port
            if controller_port is not None
            else _env_port(ENV_CONTROLLER_PORT, DEFAULT_CONTROLLER_PORT),
        )

    # -- paths ---------------------------------------------------------------------------------

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def data_dir(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.kafka_dir / "logs"

    @property
    def properties_file(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.kafka_dir / "log4j2.xml"

    @property
    def pid_file(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def console_log(self) -> Path:
        return self.logs_dir / "kafka.out"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def libs_dir(self) -> Path:
        return self.install_dir / "libs"

    @property
    def config(self) -> BrokerConfig:
        return BrokerConfig(self.data_dir, self.port, self.controller_port)

    @property
    def bootstrap(self) -> str:
        """The address clients should use: the running broker's, else the configured one."""
        return self.running_bootstrap() or self.config.bootstrap

    # -- install -------------------------------------------------------------------------------

    def ensure_installed(self) -> Path:
        """Download the broker's jars unless a complete set is cached; returns the libs dir."""
        if libs_complete(self.libs_dir):
            return self.libs_dir
        with _locked(self.install_dir / ".lock"):
            if not libs_complete(self.libs_dir):  # another process may have finished meanwhile
                self._download()
        return self.libs_dir

    def _download(self) -> None:
        partial = self.install_dir / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        pom = self.install_dir / "pom.xml"
        pom.write_text(render_pom(), encoding="utf-8")
        log.info("downloading Apache Kafka %s with Maven into %s", KAFKA_VERSION, self.libs_dir)
        started = time.monotonic()
        self._run_maven(pom, partial)
        jars = sorted(p.name for p in partial.glob("*.jar"))
        if f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar" not in jars:
            raise BrokerError(f"Maven finished but the Kafka jar is missing from {partial}")
        (partial / COMPLETE_MARKER).write_text("\n".join(jars) + "\n", encoding="utf-8")
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        partial.rename(self.libs_dir)
        log.info("%d jars ready in %.1f s", len(jars), time.monotonic() - started)

    def _run_maven(self, pom: Path, output_dir: Path) -> None:
        command = [
            _find_executable("mvn", os.environ.get("MAVEN_HOME")),
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={output_dir}",
            "-DincludeScope=runtime",
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise BrokerError(f"Maven did not finish within {MAVEN_TIMEOUT_S:.0f} s") from None
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise BrokerError(
                f"Maven could not fetch Kafka {KAFKA_VERSION} (exit {result.returncode}):\n{output}"
            )

    # -- state ---------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of this home's broker if that process is alive, else None."""
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        return pid if self._alive(pid) else None

    def _is_our_broker(self, pid: int) -> bool:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # gone (or no procfs): fall back to "does the pid exist"
            return sys.platform != "linux" and _pid_exists(pid)
        args = raw.decode(errors="replace").split("\0")  # a zombie's cmdline is empty
        return KAFKA_MAIN in args and str(self.properties_file) in args

    def running_bootstrap(self) -> str | None:
        """The bootstrap the running broker was started with (it may differ from self.port)."""
        if self.pid() is None or not self.properties_file.is_file():
            return None
        props = parse_properties(self.properties_file.read_text(encoding="utf-8"))
        return bootstrap_from_properties(props)

    def is_running(self) -> bool:
        """Process alive (pid file) and its listener accepts connections."""
        address = self.running_bootstrap()
        if address is None:
            return False
        host, _, port = address.rpartition(":")
        return port_open(host, int(port))

    def cluster_id(self) -> str | None:
        meta = self.data_dir / "meta.properties"
        if not meta.is_file():
            return None
        return parse_properties(meta.read_text(encoding="utf-8")).get("cluster.id")

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.console_log, self.server_log):
            text = tail(path, lines)
            if text:
                parts.append(f"--- {path} (last {lines} lines) ---\n{text}")
        return "\n".join(parts) or "(no broker log yet)"

    # -- start ---------------------------------------------------------------------------------

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> str:
        """Start the broker unless it runs already; return its bootstrap once it serves metadata."""
        with _locked(self.kafka_dir / ".lock"):
            pid = self.pid()
            if pid is not None:
                return self._adopt_running(pid, timeout_s)
            self._check_ports_free()
            self.ensure_installed()
            self._write_config()
            self._format_storage_once()
            self._launch()
            return self._await_ready(timeout_s)

    def _adopt_running(self, pid: int, timeout_s: float) -> str:
        address = self.running_bootstrap()
        if address != self.config.bootstrap:
            raise BrokerError(
                f"the broker of {self.home} already runs (pid {pid}) on {address}, not on "
                f"{self.config.bootstrap}; stop it first to change ports"
            )
        log.info("broker already running (pid %d) on %s", pid, address)
        # It may still be booting (started by a concurrent caller): wait for it to serve.
        self._wait_serving(timeout_s, pid)
        return address

    def _check_ports_free(self) -> None:
        self.pid_file.unlink(missing_ok=True)  # stale: its process is gone
        for port in (self.port, self.controller_port):
            if port_open(HOST, port):
                raise BrokerError(
                    f"port {HOST}:{port} is already in use by another process (another smsflow "
                    f"home's broker?). Choose other ports (--port/--controller-port or "
                    f"{ENV_PORT}/{ENV_CONTROLLER_PORT}), or set {ENV_BOOTSTRAP} to use a "
                    f"broker that is already running"
                )

    def _write_config(self) -> None:
        for directory in (self.data_dir, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(render_server_properties(self.config), encoding="utf-8")
        self.log4j_file.write_text(_data_text("kafka-log4j2.xml"), encoding="utf-8")

    def _java_command(self, main: str, *args: str, heap: tuple[str, ...] = HEAP_OPTS) -> list[str]:
        return [
            _find_executable("java", os.environ.get("JAVA_HOME")),
            *heap,
            *JVM_OPTS,
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            str(self.libs_dir / "*"),  # expanded by the JVM, not a shell
            main,
            *args,
        ]

    def _format_storage_once(self) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        cluster_id = new_cluster_id()
        log.info("formatting KRaft storage in %s (cluster id %s)", self.data_dir, cluster_id)
        command = self._java_command(
            STORAGE_TOOL_MAIN,
            "format",
            "--config",
            str(self.properties_file),
            "--cluster-id",
            cluster_id,
            heap=TOOL_HEAP_OPTS,
        )
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise BrokerError(
                f"formatting Kafka storage took over {FORMAT_TIMEOUT_S:.0f} s"
            ) from None
        if result.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )

    def _launch(self) -> None:
        command = self._java_command(KAFKA_MAIN, str(self.properties_file))
        log.info(
            "starting Kafka %s on %s (log: %s)",
            KAFKA_VERSION,
            self.config.bootstrap,
            self.server_log,
        )
        with self.console_log.open("ab") as out:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.kafka_dir,
                start_new_session=True,  # detached: survives the CLI, ignores its Ctrl-C
                close_fds=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n", encoding="utf-8")
        self.launched = True

    def _await_ready(self, timeout_s: float) -> str:
        if self._proc is None:
            raise BrokerError("internal error: no broker process to wait for")
        pid = self._proc.pid
        try:
            self._wait_serving(timeout_s, pid)
        except BrokerError:
            self._terminate(pid, DEFAULT_STOP_TIMEOUT_S)
            self.pid_file.unlink(missing_ok=True)
            raise
        log.info("Kafka ready on %s (pid %d)", self.config.bootstrap, pid)
        return self.config.bootstrap

    def _wait_serving(self, timeout_s: float, pid: int) -> None:
        """Block until the broker answers a metadata request; raise if it dies or times out."""
        deadline = time.monotonic() + timeout_s
        address = self.config.bootstrap
        admin: Any = None
        while True:
            if not self._alive(pid):
                raise BrokerError(f"Kafka exited during start-up.\n{self.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"Kafka did not serve metadata on {address} within {timeout_s:.0f} s.\n"
                    f"{self.log_tail()}"
                )
            if port_open(HOST, self.port):
                admin = admin or _admin_client(address)
                if _serves_metadata(admin, min(2.0, remaining)):
                    return
            time.sleep(_POLL_S)  # the JVM is still booting; see _POLL_S

    # -- stop ----------------------------------------------------------------------------------

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> bool:
        """Stop the broker if it runs; True if a process was stopped. Idempotent."""
        if not self.kafka_dir.is_dir():
            return False  # never set up here: nothing to stop, and nothing to create
        with _locked(self.kafka_dir / ".lock"):
            pid = self.pid()
            if pid is not None:
                log.info("stopping Kafka (pid %d)", pid)
                self._terminate(pid, timeout_s)
            self.pid_file.unlink(missing_ok=True)
            return pid is not None

    def _terminate(self, pid: int, timeout_s: float) -> None:
        """SIGTERM (controlled shutdown), wait up to timeout_s, then SIGKILL."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._wait_exit(pid, timeout_s):
            return
        log.warning("Kafka (pid %d) ignored SIGTERM for %.0f s; killing it", pid, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_exit(pid, 10.0):
            raise BrokerError(f"Kafka (pid {pid}) survived SIGKILL")

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)  # shutdown flushes logs and closes the quorum; see _POLL_S
        return True

    def _alive(self, pid: int) -> bool:
        """Liveness of a broker pid; our own child is asked directly (and reaped when it exits).

        Right after ``Popen`` the child may not have exec'd java yet, so its cmdline is still
        python's: for our own child, ``poll()`` is the only reliable answer.
        """
        if self._proc is not None and self._proc.pid == pid:
            if self._proc.poll() is None:
                return True
            self._proc = None
            return False
        return self._is_our_broker(pid)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _admin_client(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient  # deferred: keeps `broker status` fast

    return AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000})


def _serves_metadata(admin: Any, timeout_s: float) -> bool:
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(metadata.brokers)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``smsflow broker start|stop|status``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home",
        type=Path,
        default=None,
        help=f"state directory (default ${ENV_HOME} or ./.smsflow)",
    )
    common.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"client port (default ${ENV_PORT} or {DEFAULT_PORT})",
    )
    common.add_argument(
        "--controller-port",
        type=int,
        default=None,
        help=f"KRaft controller port (default ${ENV_CONTROLLER_PORT} or {DEFAULT_CONTROLLER_PORT})",
    )
    parser = subparsers.add_parser(
        "broker",
        help="run a local Apache Kafka broker (KRaft, no Docker)",
        description=f"A single-node Apache Kafka {KAFKA_VERSION} on loopback, fetched with Maven.",
    )
    actions = parser.add_subparsers(dest="broker_command", required=True, metavar="ACTION")

    start = actions.add_parser("start", parents=[common], help="start it (no-op if running)")
    start.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT_S, help="seconds")
    start.set_defaults(func=_cmd_start)

    stop = actions.add_parser("stop", parents=[common], help="stop it (no-op if stopped)")
    stop.add_argument("--timeout", type=float, default=DEFAULT_STOP_TIMEOUT_S, help="seconds")
    stop.set_defaults(func=_cmd_stop)

    status = actions.add_parser("status", parents=[common], help="exit 0 if running, 3 if not")
    status.set_defaults(func=_cmd_status)


def _broker_from_args(args: argparse.Namespace) -> LocalBroker:
    return LocalBroker.from_env(args.home, args.port, args.controller_port)


def _setup_cli_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="smsflow broker: %(message)s")


def _cmd_start(args: argparse.Namespace) -> int:
    _setup_cli_logging()
    external = resolve_bootstrap()
    if external:
        log.info("%s is set: using that cluster, not starting a local broker", ENV_BOOTSTRAP)
        print(external)
        return EXIT_OK
    try:
        print(_broker_from_args(args).start(args.timeout))
    except BrokerError as exc:
        print(f"smsflow broker start: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _cmd_stop(args: argparse.Namespace) -> int:
    _setup_cli_logging()
    try:
        stopped = _broker_from_args(args).stop(args.timeout)
    except BrokerError as exc:
        print(f"smsflow broker stop: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print("stopped" if stopped else "not running")
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    broker = _broker_from_args(args)
    pid = broker.pid()
    if pid is None:
        print(f"not running (home {broker.home})")
        return EXIT_NOT_RUNNING
    if not broker.is_running():
        print(f"starting or unresponsive: pid {pid}, {broker.bootstrap} does not answer")
        return EXIT_NOT_RUNNING
    print(
        f"running: pid {pid}, bootstrap {broker.bootstrap}, Kafka {KAFKA_VERSION}, "
        f"cluster {broker.cluster_id()}, home {broker.home}"
    )
    return EXIT_OK
