"""The local cluster's configuration, without a JVM: each node's server.properties, ports, and
the one cluster id they all format with."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsflow.devstack.broker import BrokerError
from smsflow.devstack.cluster import LocalCluster, quorum_voters, shared_cluster_id


def test_quorum_voters_lists_every_node_on_consecutive_controller_ports() -> None:
    assert quorum_voters(3, 19192) == (
        "1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"
    )


def test_nodes_are_combined_voters_with_replication_3_and_min_isr_2(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, port=19092, controller_port=19192)
    properties = [node.config.properties() for node in cluster.nodes]

    assert [p["node.id"] for p in properties] == ["1", "2", "3"]
    assert [p["listeners"] for p in properties] == [
        f"PLAINTEXT://127.0.0.1:{19092 + i},CONTROLLER://127.0.0.1:{19192 + i}" for i in range(3)
    ]
    assert {p["controller.quorum.voters"] for p in properties} == {quorum_voters(3, 19192)}
    assert {p["process.roles"] for p in properties} == {"broker,controller"}
    for key, value in {
        "default.replication.factor": "3", "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3", "transaction.state.log.min.isr": "2",
    }.items():
        assert {p[key] for p in properties} == {value}, key
    assert len({p["log.dirs"] for p in properties}) == 3
    assert cluster.bootstrap == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"


def test_a_single_node_cluster_replicates_once(tmp_path: Path) -> None:
    (node,) = LocalCluster(tmp_path, nodes=1).nodes
    assert node.config.properties()["default.replication.factor"] == "1"
    assert node.config.properties()["min.insync.replicas"] == "1"


def test_overlapping_client_and_controller_ports_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="overlap"):
        LocalCluster(tmp_path, port=19092, controller_port=19094)


def test_unknown_node_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="no node 4"):
        LocalCluster(tmp_path).node(4)


def test_every_node_formats_with_the_same_cluster_id(tmp_path: Path) -> None:
    first = shared_cluster_id(tmp_path)
    assert shared_cluster_id(tmp_path) == first
    assert len(first) == 22
