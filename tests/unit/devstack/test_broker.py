"""smsflow.devstack.broker without a broker: generated files, install bookkeeping, CLI wiring."""

from __future__ import annotations

import argparse
import base64
import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from smsflow.devstack import broker as broker_module
from smsflow.devstack.broker import (
    COMPLETE_MARKER,
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_PORT,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    KAFKA_VERSION,
    LOG4J_VERSION,
    BrokerConfig,
    BrokerError,
    LocalBroker,
    bootstrap_from_properties,
    libs_complete,
    new_cluster_id,
    parse_properties,
    render_pom,
    render_server_properties,
    resolve_bootstrap,
)

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="smsflow")
    broker_module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    result: int = args.func(args)
    return result


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SMSFLOW_HOME",
        "SMSFLOW_KAFKA_CACHE",
        "SMSFLOW_KAFKA_BOOTSTRAP",
        "SMSFLOW_KAFKA_PORT",
        "SMSFLOW_KAFKA_CONTROLLER_PORT",
    ):
        monkeypatch.delenv(name, raising=False)


# -- server.properties ------------------------------------------------------------------------


def test_server_properties_describe_a_lean_single_kraft_node(tmp_path: Path) -> None:
    props = parse_properties(render_server_properties(BrokerConfig(tmp_path / "data")))

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.segment.delete.delay.ms"] == "1000"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["num.partitions"] == "1"


@pytest.mark.parametrize(
    ("cores", "network", "io"),
    [(1, "1", "1"), (2, "1", "1"), (4, "1", "2"), (8, "2", "4"), (16, "4", "8")])
def test_request_threads_follow_the_cores(tmp_path: Path, cores: int, network: str,
                                          io: str) -> None:
    props = BrokerConfig(tmp_path, cores=cores).properties()

    assert (props["num.network.threads"], props["num.io.threads"]) == (network, io)


def test_request_threads_default_to_the_cores_this_process_may_use(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))

    assert BrokerConfig(tmp_path).cores == cores
    assert BrokerConfig(tmp_path).properties()["num.io.threads"] == str(max(1, cores // 2))


def test_server_properties_follow_the_ports(tmp_path: Path) -> None:
    config = BrokerConfig(tmp_path, port=19092, controller_port=19093)
    props = parse_properties(render_server_properties(config))

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert bootstrap_from_properties(props) == config.bootstrap == "127.0.0.1:19092"
    assert "9092" not in props["listeners"].replace("19092", "")


def test_broker_and_controller_cannot_share_a_port(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="cannot share port"):
        BrokerConfig(tmp_path, port=9092, controller_port=9092).properties()


def test_parse_properties_skips_comments_and_keeps_equals_in_values() -> None:
    text = "# comment\n! other\n\na=1\nb = x=y\nnot a property\n"
    assert parse_properties(text) == {"a": "1", "b": "x=y"}


def test_bootstrap_prefers_the_advertised_plaintext_listener() -> None:
    props = {
        "listeners": "CONTROLLER://127.0.0.1:9093,PLAINTEXT://0.0.0.0:9092",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:9092",
    }
    assert bootstrap_from_properties(props) == "127.0.0.1:9092"
    assert bootstrap_from_properties({"listeners": "CONTROLLER://127.0.0.1:9093"}) is None


# -- pom and log4j2 ---------------------------------------------------------------------------


def test_pom_pins_kafka_and_the_matching_log4j_binding() -> None:
    pom = render_pom()
    assert "${" not in pom  # every placeholder substituted

    root = ET.fromstring(pom)
    deps = {
        (
            d.findtext("m:groupId", namespaces=POM_NS),
            d.findtext("m:artifactId", namespaces=POM_NS),
        ): d.findtext("m:version", namespaces=POM_NS)
        for d in root.iterfind("m:dependencies/m:dependency", POM_NS)
    }
    assert deps[("org.apache.kafka", "kafka_2.13")] == KAFKA_VERSION
    assert deps[("org.apache.logging.log4j", "log4j-slf4j-impl")] == LOG4J_VERSION
    plugin = root.find("m:build/m:pluginManagement/m:plugins/m:plugin", POM_NS)
    assert plugin is not None
    assert plugin.findtext("m:artifactId", namespaces=POM_NS) == "maven-dependency-plugin"
    assert plugin.findtext("m:version", namespaces=POM_NS)


def test_pom_renders_other_versions() -> None:
    root = ET.fromstring(render_pom(kafka_version="3.9.1", log4j_version="2.24.3"))
    versions = [v.text for v in root.iterfind("m:dependencies/m:dependency/m:version", POM_NS)]
    assert versions == ["3.9.1", "2.24.3"]


def test_kafka_version_is_a_pinned_4x() -> None:
    major, minor, patch = (int(part) for part in KAFKA_VERSION.split("."))
    assert major == 4 and minor >= 1 and patch >= 0


def test_log4j2_config_logs_to_the_logs_dir() -> None:
    text = broker_module._data_text("kafka-log4j2.xml")
    root = ET.fromstring(text)
    assert root.tag == "Configuration"
    assert "${sys:kafka.logs.dir}/server.log" in text


# -- install bookkeeping ----------------------------------------------------------------------


def test_libs_complete_needs_the_marker_and_every_listed_jar(tmp_path: Path) -> None:
    assert not libs_complete(tmp_path / "missing")
    (tmp_path / "a.jar").write_bytes(b"")
    assert not libs_complete(tmp_path)  # no marker
    (tmp_path / COMPLETE_MARKER).write_text("a.jar\nb.jar\n")
    assert not libs_complete(tmp_path)  # b.jar missing
    (tmp_path / "b.jar").write_bytes(b"")
    assert libs_complete(tmp_path)
    (tmp_path / COMPLETE_MARKER).write_text("\n")
    assert not libs_complete(tmp_path)  # an empty list is not a complete install


FAKE_MVN = """#!/bin/sh
# Stands in for Maven: records the call, then "downloads" two jars into -DoutputDirectory.
echo call >> "$CALLS"
[ -n "$FAIL" ] && { echo "[ERROR] Could not resolve dependencies"; exit 1; }
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac
done
mkdir -p "$out" && touch "$out/kafka_2.13-%s.jar" "$out/kafka-clients-%s.jar"
"""


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN % (KAFKA_VERSION, KAFKA_VERSION))
    mvn.chmod(mvn.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("MAVEN_HOME", raising=False)
    monkeypatch.setenv("CALLS", str(calls))
    return calls


def test_ensure_installed_downloads_once(tmp_path: Path, fake_mvn: Path) -> None:
    broker = LocalBroker(home=tmp_path / "home", cache_dir=tmp_path / "cache")
    libs = broker.ensure_installed()

    assert libs == tmp_path / "cache" / f"kafka-{KAFKA_VERSION}" / "libs"
    assert libs_complete(libs)
    assert (libs.parent / "pom.xml").read_text() == render_pom()
    assert not (libs.parent / "libs.partial").exists()

    assert broker.ensure_installed() == libs
    assert fake_mvn.read_text().splitlines() == ["call"]  # the second call skipped Maven


def test_ensure_installed_redoes_an_incomplete_download(tmp_path: Path, fake_mvn: Path) -> None:
    broker = LocalBroker(home=tmp_path / "home", cache_dir=tmp_path / "cache")
    broker.libs_dir.mkdir(parents=True)
    (broker.libs_dir / "half-downloaded.jar").write_bytes(b"")

    broker.ensure_installed()

    assert libs_complete(broker.libs_dir)
    assert not (broker.libs_dir / "half-downloaded.jar").exists()


def test_maven_failure_is_a_clear_broker_error(
    tmp_path: Path, fake_mvn: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL", "1")
    broker = LocalBroker(home=tmp_path / "home", cache_dir=tmp_path / "cache")
    with pytest.raises(BrokerError, match=r"(?s)Maven could not fetch Kafka .*Could not resolve"):
        broker.ensure_installed()
    assert not libs_complete(broker.libs_dir)


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSFLOW_KAFKA_CACHE", str(tmp_path / "c"))
    assert LocalBroker().libs_dir == tmp_path / "c" / f"kafka-{KAFKA_VERSION}" / "libs"
    monkeypatch.delenv("SMSFLOW_KAFKA_CACHE")
    assert LocalBroker().libs_dir == (
        Path.home() / ".cache" / "smsflow" / f"kafka-{KAFKA_VERSION}" / "libs"
    )


# -- layout, environment, state ---------------------------------------------------------------


def test_home_defaults_to_dot_smsflow_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    broker = LocalBroker()
    assert broker.kafka_dir == tmp_path / ".smsflow" / "kafka"
    assert broker.data_dir == tmp_path / ".smsflow" / "kafka" / "data"
    assert broker.bootstrap == "127.0.0.1:9092"

    monkeypatch.setenv("SMSFLOW_HOME", str(tmp_path / "elsewhere"))
    assert LocalBroker().kafka_dir == tmp_path / "elsewhere" / "kafka"


def test_ports_come_from_arguments_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a home without a running broker
    broker = LocalBroker.from_env()
    assert (broker.port, broker.controller_port) == (DEFAULT_PORT, DEFAULT_CONTROLLER_PORT)

    monkeypatch.setenv("SMSFLOW_KAFKA_PORT", "19092")
    monkeypatch.setenv("SMSFLOW_KAFKA_CONTROLLER_PORT", "19093")
    assert LocalBroker.from_env().bootstrap == "127.0.0.1:19092"
    assert LocalBroker.from_env(port=29092).port == 29092

    monkeypatch.setenv("SMSFLOW_KAFKA_PORT", "ninety")
    with pytest.raises(BrokerError, match="not a port number"):
        LocalBroker.from_env()


def test_resolve_bootstrap_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_bootstrap() is None
    monkeypatch.setenv("SMSFLOW_KAFKA_BOOTSTRAP", "  ")
    assert resolve_bootstrap() is None
    monkeypatch.setenv("SMSFLOW_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    assert resolve_bootstrap() == "kafka-1:9092,kafka-2:9092"


def test_cluster_id_is_22_chars_of_urlsafe_base64() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert new_cluster_id() != cluster_id


def test_a_pid_file_naming_another_process_is_not_trusted(tmp_path: Path) -> None:
    broker = LocalBroker(home=tmp_path)
    assert broker.pid() is None  # no pid file
    broker.kafka_dir.mkdir(parents=True)
    broker.pid_file.write_text(f"{os.getpid()}\n")  # alive, but pytest is not Kafka
    assert broker.pid() is None
    assert not broker.is_running()
    broker.pid_file.write_text("garbage\n")
    assert broker.pid() is None


def test_stop_without_a_broker_is_a_no_op(tmp_path: Path) -> None:
    broker = LocalBroker(home=tmp_path)
    broker.kafka_dir.mkdir(parents=True)
    broker.pid_file.write_text(f"{os.getpid()}\n")  # stale: must not signal pytest
    assert broker.stop() is False
    assert not broker.pid_file.exists()


# -- CLI --------------------------------------------------------------------------------------


def test_status_of_a_fresh_home_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("broker", "status", "--home", str(tmp_path)) == EXIT_NOT_RUNNING
    assert "not running" in capsys.readouterr().out


def test_stop_of_a_fresh_home_succeeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("broker", "stop", "--home", str(tmp_path)) == EXIT_OK
    assert "not running" in capsys.readouterr().out


def test_start_with_an_external_cluster_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSFLOW_KAFKA_BOOTSTRAP", "kafka.example:9092")
    assert _cli("broker", "start", "--home", str(tmp_path)) == EXIT_OK
    assert capsys.readouterr().out.strip() == "kafka.example:9092"
    assert not (tmp_path / "kafka").exists()


def test_cli_parses_ports_home_and_timeout(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="smsflow")
    broker_module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "broker",
            "start",
            "--home",
            str(tmp_path),
            "--port",
            "1",
            "--controller-port",
            "2",
            "--timeout",
            "5",
        ]
    )
    assert (args.home, args.port, args.controller_port, args.timeout) == (tmp_path, 1, 2, 5.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["broker", "restart"])


def test_a_sasl_ssl_listener_is_added_next_to_plaintext(tmp_path: Path) -> None:
    from smsflow.devstack.broker_sasl import SaslSslMaterial

    material = SaslSslMaterial(tmp_path / "tls", "store-pw", "smsflow", "user-pw")
    extra = tuple(material.listener_properties("127.0.0.1", 9094).items())
    props = BrokerConfig(tmp_path, 9092, 9093, sasl_ssl=extra).properties()
    assert props["listeners"].split(",") == [
        "PLAINTEXT://127.0.0.1:9092", "CONTROLLER://127.0.0.1:9093", "SASL_SSL://127.0.0.1:9094",
    ]
    assert props["advertised.listeners"].endswith(",SASL_SSL://127.0.0.1:9094")
    assert props["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(material.keystore)
    assert 'user_smsflow="user-pw"' in props["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    assert "_listener" not in props
    assert "SASL_SSL" not in BrokerConfig(tmp_path, 9092, 9093).properties()["listeners"]


def test_an_ssl_listener_requiring_client_certificates_can_be_added(tmp_path: Path) -> None:
    from smsflow.devstack.broker_mtls import MtlsMaterial
    from smsflow.devstack.broker_sasl import SaslSslMaterial

    material = MtlsMaterial(SaslSslMaterial(tmp_path / "tls", "store-pw", "smsflow", "user-pw"))
    extra = tuple(material.listener_properties("127.0.0.1", 9095).items())
    props = BrokerConfig(tmp_path, 9092, 9093, mtls=extra).properties()
    assert props["listeners"].endswith(",SSL://127.0.0.1:9095")
    assert props["advertised.listeners"].endswith(",SSL://127.0.0.1:9095")
    assert props["listener.security.protocol.map"].endswith(",SSL:SSL")
    assert props["listener.name.ssl.ssl.client.auth"] == "required"
    assert props["listener.name.ssl.ssl.truststore.location"] == str(material.truststore)
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert "_listener" not in props


def test_super_users_turn_on_the_authorizer_deny_by_default(tmp_path: Path) -> None:
    props = BrokerConfig(tmp_path, 9092, 9093,
                         super_users=("User:ANONYMOUS", "User:smsflow")).properties()
    assert props["authorizer.class.name"] == broker_module.AUTHORIZER
    assert props["super.users"] == "User:ANONYMOUS;User:smsflow"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert "authorizer.class.name" not in BrokerConfig(tmp_path, 9092, 9093).properties()


def test_acls_need_the_sasl_ssl_listener(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="--sasl-ssl-port"):
        LocalBroker(tmp_path, 9092, 9093, acls=True)


def test_an_acl_broker_logs_denials(tmp_path: Path) -> None:
    """The authorizer logs denials at INFO: the log4j line an ACL broker raises must exist."""
    assert broker_module.AUTHORIZER_LOGGER in broker_module._data_text("kafka-log4j2.xml")


def test_cli_takes_acls(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="smsflow")
    broker_module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["broker", "start", "--sasl-ssl-port", "9094", "--acls"])
    assert (args.sasl_ssl_port, args.acls) == (9094, True)
    assert not parser.parse_args(["broker", "start"]).acls
