"""A real Confluent-compatible schema registry (no Docker): ``smsflow registry start|stop|status``.

Theory of operation
-------------------
Confluent's own registry is not on Maven Central, but Apicurio Registry is, and it serves the
Confluent Schema Registry REST API under ``/apis/ccompat/v7`` (Confluent clients and serdes work
against it unchanged). Its 2.x line is built for Java 11+, so it runs on the machine's Java 17
(Apicurio 3.x needs Java 21). So, like :mod:`.broker`:

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

The life cycle (install lock, pid file, start, readiness wait, stop) is
:class:`~.java_service.LocalJavaService`'s, shared with the broker. A pid is trusted only while
``/proc/<pid>/cmdline`` shows the runner jar and *this* home's ``-Dsmsflow.registry.dir``.

Layout: ``$SMSFLOW_HOME/registry/`` (default ``./.smsflow/registry``) holds ``registry.pid``,
``data/`` (the H2 database) and ``logs/``. The distribution lives in
``<cache>/apicurio-registry-<version>/app`` where ``<cache>`` is the broker's cache root
(``$SMSFLOW_KAFKA_CACHE`` or ``~/.cache/smsflow``). The port is ``--port``,
``$SMSFLOW_SCHEMA_REGISTRY_PORT`` or 8081. Clients use :meth:`LocalSchemaRegistry.url`,
``http://127.0.0.1:<port>/apis/ccompat/v7``, as ``SMSFLOW_SCHEMA_REGISTRY_URL``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from smsflow.devstack.java_service import (
    DEPENDENCY_PLUGIN_VERSION,
    EXIT_ERROR,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    HOST,
    JavaServiceError,
    LocalJavaService,
    add_lifecycle_commands,
    default_cache_root,
    env_port,
    home_option,
    publish_complete,
    run_maven,
    setup_cli_logging,
    start_command,
    status_command,
    stop_command,
)

__all__ = [
    "API_PATH", "DEFAULT_PORT", "EXIT_ERROR", "EXIT_NOT_RUNNING", "EXIT_OK", "REGISTRY_VERSION",
    "LocalSchemaRegistry", "RegistryServerError", "api_url", "register", "registry_properties",
    "render_pom", "unpack",
]

log = logging.getLogger(__name__)

REGISTRY_VERSION = "2.6.13.Final"
"""Apicurio Registry: the newest 2.x (Java 11+) with a runnable distribution on Maven Central."""
ARTIFACT = f"io.apicurio:apicurio-registry-app:{REGISTRY_VERSION}:tar.gz:all"
DIST_FILE = f"apicurio-registry-app-{REGISTRY_VERSION}-all.tar.gz"
RUNNER_JAR = f"apicurio-registry-app-{REGISTRY_VERSION}-runner.jar"
API_PATH = "/apis/ccompat/v7"
"""Apicurio's Confluent-compatible API root (what Confluent clients take as the registry URL)."""

DEFAULT_PORT = 8081
DEFAULT_START_TIMEOUT_S = 120.0

ENV_PORT = "SMSFLOW_SCHEMA_REGISTRY_PORT"
ENV_URL = "SMSFLOW_SCHEMA_REGISTRY_URL"

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


class RegistryServerError(JavaServiceError):
    """The local registry could not be installed, started or stopped; the message says why."""


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


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


class LocalSchemaRegistry(LocalJavaService):
    """One Apicurio Registry under ``<home>/registry``, driven from Python or the CLI."""

    label = "the schema registry"
    version = REGISTRY_VERSION
    error = RegistryServerError
    port_advice = f"Choose another (--port or {ENV_PORT})"
    poll_s = 0.25

    def __init__(
        self, home: Path | None = None, port: int = DEFAULT_PORT, *, cache_dir: Path | None = None
    ) -> None:
        root = (cache_dir or default_cache_root()).absolute()
        super().__init__(home, port, root / f"apicurio-registry-{REGISTRY_VERSION}")

    @classmethod
    def from_env(cls, home: Path | None = None, port: int | None = None) -> LocalSchemaRegistry:
        """An explicit port wins, then ``$SMSFLOW_SCHEMA_REGISTRY_PORT``, then 8081."""
        if port is None:
            port = env_port(ENV_PORT, DEFAULT_PORT, RegistryServerError)
        return cls(home, port)

    # -- paths ---------------------------------------------------------------------------------

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def state_dir(self) -> Path:
        return self.registry_dir

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
    def installed_dir(self) -> Path:
        return self.app_dir

    @property
    def runner_jar(self) -> Path:
        return self.app_dir / RUNNER_JAR

    @property
    def address(self) -> str:
        return api_url(self.port)

    @property
    def url(self) -> str:
        """The Confluent-compatible API root: the running registry's, else the configured one."""
        return self.current_address()

    def ports(self) -> tuple[int, ...]:
        return (self.port,)

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

    def _download(self) -> None:
        partial = self.install_dir / "app.partial"
        download = self.install_dir / "download"
        for stale in (partial, download):
            shutil.rmtree(stale, ignore_errors=True)
        pom = self.install_dir / "pom.xml"
        pom.write_text(render_pom(), encoding="utf-8")
        log.info("downloading %s with Maven into %s", ARTIFACT, self.app_dir)
        started = time.monotonic()
        run_maven(pom, ("dependency:copy", f"-DoutputDirectory={download}"),
                  what=ARTIFACT, error=RegistryServerError)
        archive = download / DIST_FILE
        if not archive.is_file():
            raise RegistryServerError(f"Maven finished but {archive} is missing")
        partial.mkdir(parents=True)
        unpack(archive, partial)
        if not (partial / RUNNER_JAR).is_file():
            raise RegistryServerError(f"{DIST_FILE} has no {RUNNER_JAR}")
        names = [RUNNER_JAR, *sorted(f"lib/{p.name}" for p in (partial / "lib").glob("*.jar"))]
        publish_complete(partial, self.app_dir, names)
        shutil.rmtree(download, ignore_errors=True)  # Maven's local repository keeps a copy
        log.info("%d jars ready in %.1f s", len(names), time.monotonic() - started)

    # -- state ---------------------------------------------------------------------------------

    def running_port(self) -> int | None:
        """The port the running registry was started with (it may differ from self.port)."""
        if self.pid() is None:
            return None
        try:
            return int(self.port_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None

    def running_address(self) -> str | None:
        port = self.running_port()
        return None if port is None else api_url(port)

    def summary(self) -> str:
        return f"url {self.url}, Apicurio Registry {REGISTRY_VERSION}"

    def _owns_cmdline(self, args: Sequence[str]) -> bool:
        return str(self.runner_jar) in args and f"-D{HOME_PROPERTY}={self.registry_dir}" in args

    def _serves(self, address: str, timeout_s: float) -> bool:
        return _serves_api(address, timeout_s)

    # -- start ---------------------------------------------------------------------------------

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> str:
        """Start the registry unless it runs already; return its API URL once it answers."""
        return super().start(timeout_s)

    def _prepare(self) -> None:
        for directory in (self.data_dir, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # Read by running_port(), which callers use once the pid file names a live registry.
        self.port_file.write_text(f"{self.port}\n", encoding="utf-8")

    def command(self) -> list[str]:
        props = registry_properties(self.registry_dir, self.port)
        return [
            self.java(),
            *HEAP_OPTS,
            *JVM_OPTS,
            *(f"-D{key}={value}" for key, value in props.items()),
            "-jar",
            str(self.runner_jar),
        ]


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``smsflow registry start|stop|status``."""
    common = home_option()
    common.add_argument(
        "--port", type=int, default=None, help=f"HTTP port (default ${ENV_PORT} or {DEFAULT_PORT})"
    )
    add_lifecycle_commands(
        subparsers, "registry", common=common,
        help_text="run a local Confluent-compatible schema registry (Apicurio, no Docker)",
        description=f"Apicurio Registry {REGISTRY_VERSION} on loopback, fetched with Maven; "
        f"its Confluent-compatible API is at http://127.0.0.1:PORT{API_PATH}.",
        start_timeout_s=DEFAULT_START_TIMEOUT_S,
        commands=(_cmd_start, _cmd_stop, _cmd_status),
    )


def _registry_from_args(args: argparse.Namespace) -> LocalSchemaRegistry:
    return LocalSchemaRegistry.from_env(args.home, args.port)


def _cmd_start(args: argparse.Namespace) -> int:
    setup_cli_logging("registry")

    def start() -> str:
        registry = _registry_from_args(args)
        url = registry.start(args.timeout)
        configured = os.environ.get(ENV_URL, "").strip()
        if configured and not registry.is_this(configured):
            log.warning("%s=%s points elsewhere: clients use that, not this one", ENV_URL,
                        configured)
        return url

    return start_command("smsflow registry start", start)


def _cmd_stop(args: argparse.Namespace) -> int:
    setup_cli_logging("registry")
    return stop_command("smsflow registry stop", lambda: _registry_from_args(args), args.timeout)


def _cmd_status(args: argparse.Namespace) -> int:
    return status_command("smsflow registry status", lambda: _registry_from_args(args))
