"""A local multi-broker Kafka cluster: ``smsflow cluster start|stop|status|kill|restart``.

Theory of operation
-------------------
The single broker of :mod:`.broker` proves nothing about replication, leader failover or
``min.insync.replicas``; this runs N (default 3) of the very same Maven-fetched Kafka nodes as
one KRaft cluster, for the scale-out bench (``bench/scaleout.py``) and
``tests/integration/test_cluster.py``.

* **Topology: combined nodes.** Every node is broker *and* controller (``process.roles=
  broker,controller``), and all N are voters of a static quorum (``controller.quorum.voters``).
  Three combined JVMs tolerate one dead node in both roles (2 of 3 voters keep the quorum, 2 of 3
  replicas keep ``min.insync.replicas=2``); separate controllers would need six JVMs, about
  2.3 GB of heap and their idle CPU, on a shared 2-core machine. Production runs dedicated
  controllers (Strimzi node pools, ``k8s/``); failover of the data path is what is tested here.
* **Replication.** Created topics default to replication factor 3 (``default.replication.factor``)
  and ``min.insync.replicas=2``; the internal topics (consumer offsets, transactions) too, so a
  dead node loses no committed offset either.
* **Layout.** ``<root>/node-<id>/kafka/`` is each node's home as :class:`~.broker.LocalBroker`
  lays it out (``server.properties``, pid file, ``data/``, ``logs/``); ``<root>/cluster.id`` is
  the id every node's storage is formatted with (written once: nodes of one cluster must share
  it). Default root ``./.smsflow/cluster``.
* **Ports.** Node ``i`` (1-based) serves clients on ``port + i - 1`` and its controller on
  ``controller_port + i - 1``: 19092-19094 and 19192-19194 by default, away from the shared
  single broker (9092/9093) and the registry (8081).
* **Start.** All nodes are launched at once (threads): a node reports ready only once it has a
  quorum, so starting them one after another would wait forever on the first.
* **Drills.** :meth:`LocalCluster.kill` SIGKILLs one node (a crash: no controlled shutdown);
  :meth:`LocalCluster.restart` starts it again on its data, and it catches up from the leaders.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from smsflow.devstack.broker import (
    DEFAULT_START_TIMEOUT_S,
    BrokerConfig,
    BrokerError,
    LocalBroker,
    new_cluster_id,
)
from smsflow.devstack.java_service import (
    DEFAULT_STOP_TIMEOUT_S,
    EXIT_ERROR,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    HOST,
    JavaServiceError,
    add_lifecycle_commands,
    default_home,
    locked,
    setup_cli_logging,
    start_command,
)

log = logging.getLogger(__name__)

DEFAULT_NODES = 3
DEFAULT_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19192
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2

T = TypeVar("T")


def default_root() -> Path:
    """``<$SMSFLOW_HOME or ./.smsflow>/cluster``."""
    return default_home() / "cluster"


def quorum_voters(nodes: int, controller_port: int, host: str = HOST) -> str:
    """``1@host:port,2@host:port+1,…``: the static quorum of ``nodes`` combined nodes."""
    return ",".join(f"{i}@{host}:{controller_port + i - 1}" for i in range(1, nodes + 1))


class ClusterNode(LocalBroker):
    """One combined broker+controller of a :class:`LocalCluster`, under ``<root>/node-<id>``."""

    label = "Kafka node"

    def __init__(
        self, root: Path, node_id: int, *, port: int, controller_port: int, voters: str,
        replication_factor: int, min_insync_replicas: int, cache_dir: Path | None = None,
    ) -> None:
        super().__init__(root / f"node-{node_id}", port, controller_port, cache_dir=cache_dir)
        self.root = root
        self.node_id = node_id
        self.voters = voters
        self.replication_factor = replication_factor
        self.min_insync_replicas = min_insync_replicas

    @property
    def config(self) -> BrokerConfig:
        return BrokerConfig(
            self.data_dir, self.port, self.controller_port, node_id=self.node_id,
            quorum_voters=self.voters, replication_factor=self.replication_factor,
            min_insync_replicas=self.min_insync_replicas,
        )

    def _cluster_id_to_format(self) -> str:
        return shared_cluster_id(self.root)


def shared_cluster_id(root: Path) -> str:
    """The id in ``<root>/cluster.id``, created on first use (under a lock: the nodes format
    concurrently and must all get the same one)."""
    id_file = root / "cluster.id"
    with locked(root / ".lock"):
        if not id_file.is_file():
            id_file.write_text(new_cluster_id() + "\n", encoding="utf-8")
        return id_file.read_text(encoding="utf-8").strip()


class LocalCluster:
    """``nodes`` combined KRaft nodes on loopback; see the module docstring."""

    def __init__(
        self,
        root: Path | None = None,
        nodes: int = DEFAULT_NODES,
        port: int = DEFAULT_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        *,
        cache_dir: Path | None = None,
        exit_with_starter: bool = False,
    ) -> None:
        """``exit_with_starter``: the nodes this object launches stop once this process is
        gone (a throwaway cluster of a test or benchmark; lifeline.py). ``smsflow cluster
        start`` leaves it off: its nodes outlive the command, until ``cluster stop``."""
        if nodes < 1:
            raise BrokerError(f"a cluster needs at least one node, not {nodes}")
        if abs(port - controller_port) < nodes:
            raise BrokerError(
                f"client ports {port}-{port + nodes - 1} overlap controller ports "
                f"{controller_port}-{controller_port + nodes - 1}"
            )
        self.root = (root or default_root()).absolute()
        voters = quorum_voters(nodes, controller_port)
        replication = min(REPLICATION_FACTOR, nodes)
        self.nodes = [
            ClusterNode(
                self.root, i, port=port + i - 1, controller_port=controller_port + i - 1,
                voters=voters, replication_factor=replication,
                min_insync_replicas=min(MIN_INSYNC_REPLICAS, replication), cache_dir=cache_dir,
            )
            for i in range(1, nodes + 1)
        ]
        for node in self.nodes:
            node.exit_with_starter = exit_with_starter

    @property
    def bootstrap(self) -> str:
        """Every node's client address, comma-separated (clients find the rest from any one)."""
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> ClusterNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise BrokerError(f"no node {node_id}: this cluster has nodes 1-{len(self.nodes)}")

    def _on_every_node(self, action: Callable[[ClusterNode], T]) -> list[T]:
        """Run ``action`` on all nodes at once; the first failure is raised after all ended."""
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            futures = [pool.submit(action, node) for node in self.nodes]
        return [future.result() for future in futures]

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> str:
        """Start every node that is not running; return the bootstrap once all serve. If one
        fails, the nodes this call launched are stopped again."""
        self.nodes[0].ensure_installed()  # once, before the threads queue on the install lock
        try:
            self._on_every_node(lambda node: node.start(timeout_s))
        except JavaServiceError:
            for node in self.nodes:
                if node.launched:
                    node.stop()
            raise
        return self.bootstrap

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> bool:
        """Stop every node (at once: the last of a sequential stop would have lost its quorum
        and wait out its controlled shutdown); True if any process was stopped."""
        return any(self._on_every_node(lambda node: node.stop(timeout_s)))

    def kill(self, node_id: int) -> int | None:
        """SIGKILL one node (a crash); returns its pid, None when it was not running."""
        return self.node(node_id).kill()

    def restart(self, node_id: int, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> str:
        """Start one node again (after :meth:`kill`); returns its address once it serves."""
        return self.node(node_id).start(timeout_s)

    def pids(self) -> dict[int, int | None]:
        """Each node's pid, None for a node that is down."""
        return {node.node_id: node.pid() for node in self.nodes}


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``smsflow cluster start|stop|status|kill|restart``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=None,
                        help="state directory (default <$SMSFLOW_HOME or ./.smsflow>/cluster)")
    common.add_argument("--nodes", type=int, default=DEFAULT_NODES,
                        help=f"combined broker+controller nodes (default {DEFAULT_NODES})")
    common.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"client port of node 1, +1 per node (default {DEFAULT_PORT})")
    common.add_argument("--controller-port", type=int, default=DEFAULT_CONTROLLER_PORT,
                        help="controller port of node 1, +1 per node "
                             f"(default {DEFAULT_CONTROLLER_PORT})")
    actions = add_lifecycle_commands(
        subparsers, "cluster", common=common,
        help_text="run a local multi-node Kafka cluster (KRaft, replication 3, min ISR 2)",
        description="N combined broker+controller Kafka nodes on loopback, from the jars of "
                    "`smsflow broker`; for failover drills and the scale-out bench.",
        start_timeout_s=DEFAULT_START_TIMEOUT_S,
        commands=(_cmd_start, _cmd_stop, _cmd_status),
    )
    for name, func, text in (
        ("kill", _cmd_kill, "SIGKILL one node (a crash drill)"),
        ("restart", _cmd_restart, "start one (killed or stopped) node again"),
    ):
        parser = actions.add_parser(name, parents=[common], help=text)
        parser.add_argument("node", type=int, help="node id (1-based)")
        parser.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT_S,
                            help="seconds")
        parser.set_defaults(func=func)


def _cluster(args: argparse.Namespace) -> LocalCluster:
    return LocalCluster(args.root, args.nodes, args.port, args.controller_port)


def _guarded(prog: str, action: Callable[[], int]) -> int:
    try:
        return action()
    except JavaServiceError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _cmd_start(args: argparse.Namespace) -> int:
    setup_cli_logging("cluster")
    return start_command("smsflow cluster start", lambda: _cluster(args).start(args.timeout))


def _cmd_stop(args: argparse.Namespace) -> int:
    setup_cli_logging("cluster")

    def stop() -> int:
        print("stopped" if _cluster(args).stop(args.timeout) else "not running")
        return EXIT_OK

    return _guarded("smsflow cluster stop", stop)


def _cmd_status(args: argparse.Namespace) -> int:
    """One line per node; exit 0 only when every node runs and answers."""

    def status() -> int:
        cluster = _cluster(args)
        up = 0
        for node in cluster.nodes:
            pid = node.pid()
            state = ("down" if pid is None else
                     "running" if node.is_running() else "starting or unresponsive")
            up += state == "running"
            print(f"node {node.node_id}: {state}, pid {pid}, {node.address}")
        print(f"bootstrap {cluster.bootstrap}, {up}/{len(cluster.nodes)} up, root {cluster.root}")
        return EXIT_OK if up == len(cluster.nodes) else EXIT_NOT_RUNNING

    return _guarded("smsflow cluster status", status)


def _cmd_kill(args: argparse.Namespace) -> int:
    setup_cli_logging("cluster")

    def kill() -> int:
        pid = _cluster(args).kill(args.node)
        print(f"killed pid {pid}" if pid else "not running")
        return EXIT_OK

    return _guarded("smsflow cluster kill", kill)


def _cmd_restart(args: argparse.Namespace) -> int:
    setup_cli_logging("cluster")
    return start_command("smsflow cluster restart",
                         lambda: _cluster(args).restart(args.node, args.timeout))


__all__: Sequence[str] = [
    "DEFAULT_CONTROLLER_PORT", "DEFAULT_NODES", "DEFAULT_PORT", "MIN_INSYNC_REPLICAS",
    "REPLICATION_FACTOR", "ClusterNode", "LocalCluster", "quorum_voters", "register",
]
