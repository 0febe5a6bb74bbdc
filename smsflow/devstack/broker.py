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

Steps 1, 4 and 5, the pid file and the locks are :class:`~.java_service.LocalJavaService`'s, shared
with the schema registry. A pid is trusted only while ``/proc/<pid>/cmdline`` shows ``kafka.Kafka``
with *this* home's ``server.properties``: a stale pid file or a recycled pid never makes us signal
a stranger. Install and start/stop each take an exclusive ``flock``, so concurrent callers (two
test sessions, a CLI and a fixture) queue instead of racing; the second one finds the work done.

Layout: ``$SMSFLOW_HOME/kafka/`` (default ``./.smsflow/kafka``) holds ``server.properties``,
``log4j2.xml``, ``kafka.pid``, ``data/`` (topic logs and KRaft metadata) and ``logs/``.
Jars live in ``$SMSFLOW_KAFKA_CACHE/kafka-<version>/libs`` (default ``~/.cache/smsflow``).
``SMSFLOW_KAFKA_BOOTSTRAP`` means "use that existing cluster": nothing local is started.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from smsflow.devstack.broker_mtls import MtlsMaterial, ensure_mtls_material
from smsflow.devstack.broker_sasl import SaslSslMaterial, ensure_material, upsert_scram_user
from smsflow.devstack.java_service import (
    COMPLETE_MARKER,
    DEPENDENCY_PLUGIN_VERSION,
    EXIT_ERROR,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    HOST,
    JavaServiceError,
    LocalJavaService,
    add_lifecycle_commands,
    default_cache_root,
    default_home,
    env_port,
    home_option,
    libs_complete,
    port_open,
    publish_complete,
    run_maven,
    setup_cli_logging,
    start_command,
    status_command,
    stop_command,
    tail,
)

__all__ = [
    "COMPLETE_MARKER", "DEFAULT_CONTROLLER_PORT", "DEFAULT_PORT", "EXIT_ERROR", "EXIT_NOT_RUNNING",
    "EXIT_OK", "KAFKA_VERSION", "LOG4J_VERSION", "BrokerConfig", "BrokerError", "LocalBroker",
    "bootstrap_from_properties", "default_cache_root", "default_home", "libs_complete",
    "new_cluster_id", "parse_properties", "register", "render_pom", "render_server_properties",
    "resolve_bootstrap",
]

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.2"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.25.3"
"""Must equal the log4j-core version that KAFKA_VERSION depends on (the binding is added by us)."""

DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_START_TIMEOUT_S = 60.0
FORMAT_TIMEOUT_S = 120.0

ENV_BOOTSTRAP = "SMSFLOW_KAFKA_BOOTSTRAP"
ENV_PORT = "SMSFLOW_KAFKA_PORT"
ENV_CONTROLLER_PORT = "SMSFLOW_KAFKA_CONTROLLER_PORT"
ENV_SASL_SSL_PORT = "SMSFLOW_KAFKA_SASL_SSL_PORT"
ENV_SSL_PORT = "SMSFLOW_KAFKA_SSL_PORT"

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
AUTHORIZER_LOGGER = '<Logger name="kafka.authorizer.logger" level="WARN"/>'
"""The line of kafka-log4j2.xml that an authorizing broker turns to INFO: denials are logged
at INFO (``Principal = User:… is Denied operation = …``), the one place a missing ACL shows."""

KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"

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


class BrokerError(JavaServiceError):
    """The local broker could not be installed, started or stopped; the message says why."""


# --------------------------------------------------------------------------------------------
# Pure helpers: environment, rendering (unit-tested without a broker)
# --------------------------------------------------------------------------------------------


def resolve_bootstrap() -> str | None:
    """The external cluster named by ``$SMSFLOW_KAFKA_BOOTSTRAP``, or None to use a local broker."""
    value = os.environ.get(ENV_BOOTSTRAP, "").strip()
    return value or None


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


def usable_cores() -> int:
    """CPUs this process may run on (its affinity, not the host's count)."""
    return len(os.sched_getaffinity(0))


def request_threads(cores: int) -> tuple[int, int]:
    """``(num.network.threads, num.io.threads)`` for a broker on ``cores`` CPUs.

    Every produce and fetch request is handed from a network thread to a request-handler
    thread and back; on a 2-core machine that also runs the worker, the sender and the
    simulator, more threads than cores only add wake-ups. Measured with 2 network and 4 io
    threads against 1 and 1 (``bench/e2e.py`` at a steady 600 msg/s, alternated, broker
    restarted and warmed up each time; docs/performance.md#broker-request-threads): the
    broker took ~17 % less CPU per message with one of each, ~28 % less in a burst. One
    network thread per 4 cores and one request handler per 2 cores keeps that at 2 cores and
    reaches the old 2/4 at 8 cores (Kafka's defaults, 3/8, are for dedicated machines)."""
    return max(1, cores // 4), max(1, cores // 2)


@dataclass(frozen=True)
class BrokerConfig:
    """What ``server.properties`` is derived from."""

    data_dir: Path
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    host: str = HOST
    node_id: int = 1
    quorum_voters: str | None = None
    """``id@host:port,…`` of every controller; None: this node alone (single-node broker)."""
    replication_factor: int = 1
    """Default replication of created topics, and of the internal topics (offsets, transactions)."""
    min_insync_replicas: int = 1
    sasl_ssl: tuple[tuple[str, str], ...] = ()
    """The SASL_SSL listener's properties (broker_sasl.py), with its address as ``_listener``;
    empty: PLAINTEXT only."""
    mtls: tuple[tuple[str, str], ...] = ()
    """The SSL listener's properties (client certificate required, broker_mtls.py), likewise;
    empty: none."""
    cores: int = field(default_factory=usable_cores)
    """CPUs the broker shares with everything else here: sizes its request threads."""
    super_users: tuple[str, ...] = ()
    """Principals the authorizer lets do anything (``User:ANONYMOUS``, ``User:smsflow``);
    non-empty turns on KRaft's ``StandardAuthorizer`` with deny-by-default (``--acls``)."""

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def properties(self) -> dict[str, str]:
        if self.port == self.controller_port:
            raise BrokerError(f"broker and controller cannot share port {self.port}")
        props = self._plaintext_properties()
        for listener_props in (self.sasl_ssl, self.mtls):
            if not listener_props:
                continue
            extra = dict(listener_props)
            listener = extra.pop("_listener")
            name = listener.partition("://")[0]  # SASL_SSL or SSL: the protocol of that name
            props["listeners"] += f",{listener}"
            props["advertised.listeners"] += f",{listener}"
            props["listener.security.protocol.map"] += f",{name}:{name}"
            props |= extra
        if self.super_users:
            # KRaft's own ACL store; what no ACL allows is denied (Strimzi's `simple`
            # authorization). The super users keep the PLAINTEXT and controller listeners
            # (unauthenticated: ANONYMOUS) working for the broker itself and the admin harness.
            props["authorizer.class.name"] = AUTHORIZER
            props["super.users"] = ";".join(self.super_users)
            props["allow.everyone.if.no.acl.found"] = "false"
        return props

    def _plaintext_properties(self) -> dict[str, str]:
        network_threads, io_threads = request_threads(self.cores)
        return {
            # One KRaft node that is its own controller; a static one-voter quorum, so the
            # controller port can change between runs without touching the formatted metadata.
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.quorum_voters
            or f"{self.node_id}@{self.host}:{self.controller_port}",
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
            "default.replication.factor": str(self.replication_factor),
            "min.insync.replicas": str(self.min_insync_replicas),
            # A consumer group forms at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": "0",
            # A deleted topic's files go after 1 s instead of 60 (once the broker has run for
            # log.initial.task.delay.ms, 30 s; measured: 1.5 s): tests and benchmarks delete
            # their topics at the end and the broker often stops within the minute, leaving the
            # files for the next start to purge. A dev broker that had collected ~2,500 such
            # partitions (and ~7,000 of runs from before the clean-up) outlasted the test
            # fixture's 60 s start timeout (session 17).
            "log.segment.delete.delay.ms": "1000",
            # Internal topics replicated like the others (1 on a single node), and few
            # partitions (50 by default) so the first group / first transaction does not create
            # 50 logs on a 2-core box.
            "offsets.topic.replication.factor": str(self.replication_factor),
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": str(self.replication_factor),
            "transaction.state.log.min.isr": str(self.min_insync_replicas),
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": str(self.replication_factor),
            "share.coordinator.state.topic.min.isr": str(self.min_insync_replicas),
            # Fewer threads than the server defaults (3 network, 8 io): see request_threads.
            "num.network.threads": str(network_threads),
            "num.io.threads": str(io_threads),
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


# --------------------------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------------------------


class LocalBroker(LocalJavaService):
    """One single-node Kafka (KRaft) under ``<home>/kafka``, driven from Python or the CLI."""

    label = "Kafka"
    version = KAFKA_VERSION
    error = BrokerError
    port_advice = (
        f"Another smsflow home's broker? Choose other ports (--port/--controller-port or "
        f"{ENV_PORT}/{ENV_CONTROLLER_PORT}), or set {ENV_BOOTSTRAP} to use a broker that is "
        f"already running"
    )

    def __init__(
        self,
        home: Path | None = None,
        port: int = DEFAULT_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        *,
        cache_dir: Path | None = None,
        sasl_ssl_port: int | None = None,
        ssl_port: int | None = None,
        acls: bool = False,
    ) -> None:
        root = (cache_dir or default_cache_root()).absolute()
        super().__init__(home, port, root / f"kafka-{KAFKA_VERSION}")
        self.controller_port = controller_port
        self.sasl_ssl_port = sasl_ssl_port
        """Adds a SASL_SSL listener on this port (broker_sasl.py); None: PLAINTEXT only."""
        self.ssl_port = ssl_port
        """Adds an SSL listener requiring a client certificate (broker_mtls.py); None: none."""
        if acls and sasl_ssl_port is None:
            raise BrokerError("ACLs need the SASL_SSL listener (--sasl-ssl-port): on PLAINTEXT "
                              "every client is the same anonymous super user")
        self.acls = acls
        """Enforce ACLs (StandardAuthorizer, deny by default) on the SASL_SSL listener; the
        PLAINTEXT listener and the listener's own user (broker_sasl.USER) are super users."""
        self._admins: dict[str, Any] = {}  # one metadata client per address probed

    @classmethod
    def from_env(
        cls, home: Path | None = None, port: int | None = None, controller_port: int | None = None,
        sasl_ssl_port: int | None = None, ssl_port: int | None = None, acls: bool = False,
    ) -> LocalBroker:
        """Explicit arguments win, then ``SMSFLOW_KAFKA_PORT`` / ``..._CONTROLLER_PORT`` /
        ``..._SASL_SSL_PORT`` / ``..._SSL_PORT`` (unset: no such listener)."""
        if sasl_ssl_port is None and os.environ.get(ENV_SASL_SSL_PORT):
            sasl_ssl_port = env_port(ENV_SASL_SSL_PORT, 0, BrokerError)
        if ssl_port is None and os.environ.get(ENV_SSL_PORT):
            ssl_port = env_port(ENV_SSL_PORT, 0, BrokerError)
        return cls(
            home,
            port if port is not None else env_port(ENV_PORT, DEFAULT_PORT, BrokerError),
            controller_port
            if controller_port is not None
            else env_port(ENV_CONTROLLER_PORT, DEFAULT_CONTROLLER_PORT, BrokerError),
            sasl_ssl_port=sasl_ssl_port, ssl_port=ssl_port, acls=acls,
        )

    # -- paths ---------------------------------------------------------------------------------

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def state_dir(self) -> Path:
        return self.kafka_dir

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
    def installed_dir(self) -> Path:
        return self.libs_dir

    @property
    def config(self) -> BrokerConfig:
        sasl_ssl: tuple[tuple[str, str], ...] = ()
        if self.sasl_ssl_port is not None:
            props = self.sasl_ssl_material().listener_properties(HOST, self.sasl_ssl_port)
            sasl_ssl = tuple(props.items())
        mtls: tuple[tuple[str, str], ...] = ()
        if self.ssl_port is not None:
            mtls = tuple(self.mtls_material().listener_properties(HOST, self.ssl_port).items())
        super_users: tuple[str, ...] = ()
        if self.acls:
            super_users = ("User:ANONYMOUS", f"User:{self.sasl_ssl_material().user}")
        return BrokerConfig(self.data_dir, self.port, self.controller_port, sasl_ssl=sasl_ssl,
                            mtls=mtls, super_users=super_users)

    def sasl_ssl_material(self) -> SaslSslMaterial:
        """The CA, keystore and credentials of the SASL_SSL listener (made on first use)."""
        return ensure_material(self.kafka_dir / "tls", os.environ.get("JAVA_HOME"))

    def mtls_material(self) -> MtlsMaterial:
        """The CA, keystore, truststore and client certificate of the SSL listener."""
        return ensure_mtls_material(self.kafka_dir / "tls", os.environ.get("JAVA_HOME"))

    @property
    def address(self) -> str:
        return self.config.bootstrap

    @property
    def bootstrap(self) -> str:
        """The address clients should use: the running broker's, else the configured one."""
        return self.current_address()

    def ports(self) -> tuple[int, ...]:
        extra = tuple(p for p in (self.sasl_ssl_port, self.ssl_port) if p is not None)
        return (self.port, self.controller_port, *extra)

    # -- install -------------------------------------------------------------------------------

    def _download(self) -> None:
        partial = self.install_dir / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        pom = self.install_dir / "pom.xml"
        pom.write_text(render_pom(), encoding="utf-8")
        log.info("downloading Apache Kafka %s with Maven into %s", KAFKA_VERSION, self.libs_dir)
        started = time.monotonic()
        run_maven(
            pom,
            ("dependency:copy-dependencies", f"-DoutputDirectory={partial}",
             "-DincludeScope=runtime"),
            what=f"Kafka {KAFKA_VERSION}", error=BrokerError,
        )
        jars = sorted(p.name for p in partial.glob("*.jar"))
        if f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar" not in jars:
            raise BrokerError(f"Maven finished but the Kafka jar is missing from {partial}")
        publish_complete(partial, self.libs_dir, jars)
        log.info("%d jars ready in %.1f s", len(jars), time.monotonic() - started)

    # -- state ---------------------------------------------------------------------------------

    def _owns_cmdline(self, args: Sequence[str]) -> bool:
        return KAFKA_MAIN in args and str(self.properties_file) in args

    def running_address(self) -> str | None:
        """The bootstrap the running broker was started with (it may differ from self.port)."""
        if self.pid() is None or not self.properties_file.is_file():
            return None
        props = parse_properties(self.properties_file.read_text(encoding="utf-8"))
        return bootstrap_from_properties(props)

    def cluster_id(self) -> str | None:
        meta = self.data_dir / "meta.properties"
        if not meta.is_file():
            return None
        return parse_properties(meta.read_text(encoding="utf-8")).get("cluster.id")

    def summary(self) -> str:
        return (f"bootstrap {self.bootstrap}, Kafka {KAFKA_VERSION}, "
                f"cluster {self.cluster_id()}")

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.console_log, self.server_log):
            text = tail(path, lines)
            if text:
                parts.append(f"--- {path} (last {lines} lines) ---\n{text}")
        return "\n".join(parts) or "(no broker log yet)"

    def _serves(self, address: str, timeout_s: float) -> bool:
        """A metadata request lists a broker (the port alone opens before Kafka serves)."""
        host, _, port = address.rpartition(":")
        if not port_open(host, int(port)):
            return False
        if address not in self._admins:
            self._admins[address] = _admin_client(address)
        return _serves_metadata(self._admins[address], timeout_s)

    # -- start ---------------------------------------------------------------------------------

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> str:
        """Start the broker unless it runs already; return its bootstrap once it serves metadata.
        With a SASL_SSL listener, its SCRAM user is created (or reset) before returning."""
        address = super().start(timeout_s)
        if self.sasl_ssl_port is not None:
            if address not in self._admins:
                self._admins[address] = _admin_client(address)
            upsert_scram_user(self._admins[address], self.sasl_ssl_material(), timeout_s)
        return address

    def _prepare(self) -> None:
        for directory in (self.data_dir, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(render_server_properties(self.config), encoding="utf-8")
        log4j = _data_text("kafka-log4j2.xml")
        if self.acls:
            log4j = log4j.replace(AUTHORIZER_LOGGER, AUTHORIZER_LOGGER.replace("WARN", "INFO"))
        self.log4j_file.write_text(log4j, encoding="utf-8")
        self._format_storage_once()

    def _java_command(self, main: str, *args: str, heap: tuple[str, ...] = HEAP_OPTS) -> list[str]:
        return [
            self.java(),
            *heap,
            *JVM_OPTS,
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            str(self.libs_dir / "*"),  # expanded by the JVM, not a shell
            main,
            *args,
        ]

    def command(self) -> list[str]:
        return self._java_command(KAFKA_MAIN, str(self.properties_file))

    def _cluster_id_to_format(self) -> str:
        """The cluster id a first start formats with: a fresh one for a single node (a
        cluster's nodes must share theirs)."""
        return new_cluster_id()

    def _format_storage_once(self) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        cluster_id = self._cluster_id_to_format()
        log.info("formatting KRaft storage in %s (cluster id %s)", self.data_dir, cluster_id)
        command = self._java_command(
            STORAGE_TOOL_MAIN,
            "format",
            "--config",
            str(self.properties_file),
            # One argument: an id may begin with "-" (URL-safe base64), which argparse would
            # otherwise take for an option ("expected one argument").
            f"--cluster-id={cluster_id}",
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
    common = home_option()
    common.add_argument(
        "--port", type=int, default=None,
        help=f"client port (default ${ENV_PORT} or {DEFAULT_PORT})",
    )
    common.add_argument(
        "--controller-port", type=int, default=None,
        help=f"KRaft controller port (default ${ENV_CONTROLLER_PORT} or {DEFAULT_CONTROLLER_PORT})",
    )
    common.add_argument(
        "--sasl-ssl-port", type=int, default=None,
        help=f"also listen with SASL_SSL (SCRAM-SHA-512/256, PLAIN; self-signed CA) on this "
        f"port (default ${ENV_SASL_SSL_PORT}; unset: PLAINTEXT only). docs/broker.md",
    )
    common.add_argument(
        "--ssl-port", type=int, default=None,
        help=f"also listen with SSL requiring a client certificate signed by the dev CA (mTLS) "
        f"on this port (default ${ENV_SSL_PORT}; unset: none). docs/broker.md",
    )
    common.add_argument(
        "--acls", action="store_true",
        help="enforce ACLs on the SASL_SSL listener (StandardAuthorizer, deny by default; the "
        "PLAINTEXT listener and the listener's own user are super users). docs/broker.md",
    )
    add_lifecycle_commands(
        subparsers, "broker", common=common,
        help_text="run a local Apache Kafka broker (KRaft, no Docker)",
        description=f"A single-node Apache Kafka {KAFKA_VERSION} on loopback, fetched with Maven.",
        start_timeout_s=DEFAULT_START_TIMEOUT_S,
        commands=(_cmd_start, _cmd_stop, _cmd_status),
    )


def _broker_from_args(args: argparse.Namespace) -> LocalBroker:
    return LocalBroker.from_env(args.home, args.port, args.controller_port, args.sasl_ssl_port,
                                args.ssl_port, acls=args.acls)


def _start_and_describe(broker: LocalBroker, timeout_s: float) -> str:
    address = broker.start(timeout_s)
    if broker.sasl_ssl_port is not None:
        # stderr: stdout stays the bootstrap alone, for `$(smsflow broker start)`.
        print(broker.sasl_ssl_material().describe(HOST, broker.sasl_ssl_port), file=sys.stderr)
        if broker.acls:
            print(f"  ACLs enforced ({AUTHORIZER.rsplit('.', 1)[1]}, deny by default); super "
                  f"users: {';'.join(broker.config.super_users)}", file=sys.stderr)
    if broker.ssl_port is not None:
        print(broker.mtls_material().describe(HOST, broker.ssl_port), file=sys.stderr)
    return address


def _cmd_start(args: argparse.Namespace) -> int:
    setup_cli_logging("broker")
    external = resolve_bootstrap()
    if external:
        log.info("%s is set: using that cluster, not starting a local broker", ENV_BOOTSTRAP)
        print(external)
        return EXIT_OK
    return start_command("smsflow broker start",
                         lambda: _start_and_describe(_broker_from_args(args), args.timeout))


def _cmd_stop(args: argparse.Namespace) -> int:
    setup_cli_logging("broker")
    return stop_command("smsflow broker stop", lambda: _broker_from_args(args), args.timeout)


def _cmd_status(args: argparse.Namespace) -> int:
    return status_command("smsflow broker status", lambda: _broker_from_args(args))
