"""The pipeline on a broker that enforces the manifests' ACLs (issue 13).

A private broker (temp home, free ports; the shared broker at 127.0.0.1:9092 is never touched)
runs KRaft's StandardAuthorizer, deny by default (``LocalBroker(acls=True)``). Each process's
KafkaUser of k8s/kafka/users/kafkausers.yaml becomes a SCRAM user with exactly the ACLs the
manifest declares (tests/integration/kafka_acls.py), and each process logs in as its own user
over SASL_SSL, as in the cluster. The run uses the manifests' own names (no topic prefix, app
id ``smsflow``): the broker is this module's alone, so nothing needs isolating and no name is
rewritten between the YAML and the broker.

The harness (topics, as the Topic Operator would; traffic and reading the reports) is the
broker's super user; the configuration is applied as ``smsflow-config``, like the config Job.
"""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation, AdminClient, ResourceType
from pydantic import SecretStr

from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.broker import LocalBroker
from smsflow.devstack.broker_sasl import upsert_scram_credentials
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import free_port
from smsflow.devstack.stack import LocalStack, ManagedProcess, stack_env
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import CONFIG, SENT, apply_topics
from tests.integration.kafka_acls import create_acls, delete_acl, denials, load_users
from tests.integration.waiting import wait_until
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow

PROCESS_USERS = ("smsflow-worker", "smsflow-sender", "smsflow-webhooks", "smsflow-api",
                 "smsflow-config")
#: What a client says when the broker refuses an operation (librdkafka, aiokafka, Kafka).
AUTHZ_MARKERS = ("AUTHORIZATION_FAILED", "AuthorizationFailed", "AuthorizationError",
                 "Not authorized", "not authorized")
MESSAGES = 200
FLOW_DEADLINE_S = 60.0
REFUSAL_DEADLINE_S = 30.0


@dataclass
class AclBroker:
    broker: LocalBroker
    admin: AdminClient  # PLAINTEXT: the super user
    passwords: dict[str, Path]  # user -> file holding its password
    home: Path

    def settings(self, user: str | None = None) -> Settings:
        """SASL_SSL as ``user`` (None: the listener's super user), with the manifests' names."""
        material = self.broker.sasl_ssl_material()
        password = (self.home / "super-password") if user is None else self.passwords[user]
        if user is None:
            password.write_text(material.password)
        return Settings(
            kafka_bootstrap=f"127.0.0.1:{self.broker.sasl_ssl_port}",
            kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username=material.user if user is None else user,
            kafka_sasl_password=SecretStr(f"file:{password}"),
            kafka_ssl_ca_file=material.ca_file,
            topic_prefix="", app_id="smsflow", home=self.home, partitions=4,
        )

    def env_of(self, user: str) -> dict[str, str]:
        return {"SMSFLOW_KAFKA_SASL_USERNAME": user,
                "SMSFLOW_KAFKA_SASL_PASSWORD": f"file:{self.passwords[user]}"}


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclBroker]:
    home = tmp_path_factory.mktemp("acl-broker")
    broker = LocalBroker(home, free_port(), free_port(), sasl_ssl_port=free_port(), acls=True)
    try:
        broker.start(90)
        admin = AdminClient(client_config(f"127.0.0.1:{broker.port}"))
        users = load_users()
        passwords = {}
        for user in PROCESS_USERS:
            password = secrets.token_urlsafe(18)
            passwords[user] = home / f"{user}.password"
            passwords[user].write_text(password)
            upsert_scram_credentials(admin, user, password)
            create_acls(admin, list(users[user].bindings))
        yield AclBroker(broker, admin, passwords, home)
    finally:
        broker.stop(30)


def test_the_broker_enforces_acls_on_sasl_ssl_only(acl_broker: AclBroker) -> None:
    props = acl_broker.broker.config.properties()
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:ANONYMOUS;User:smsflow"


def _authz_errors(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return [line for line in lines if any(marker in line for marker in AUTHZ_MARKERS)]


def _start_side_processes(stack: LocalStack, acl: AclBroker, logs: Path) -> dict[str, int]:
    """Webhooks and the API, each as its own user; returns the API's port."""
    api_port = free_port()
    extra = {
        "webhooks": (["webhooks", "run", "--metrics-port", "0"], "smsflow-webhooks", {}),
        "api": (["api"], "smsflow-api", {"SMSFLOW_API_KEY_PEPPER": secrets.token_urlsafe(24),
                                         "SMSFLOW_API_PORT": str(api_port)}),
    }
    for name, (argv, user, env) in extra.items():
        process = ManagedProcess(name, [*stack.smsflow_argv(), *argv], logs / f"{name}.log")
        process.start({**stack.env, **acl.env_of(user), **env})
        stack.processes.append(process)
    return {"api": api_port}


def _api_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _prepare(acl: AclBroker, home: Path) -> tuple[LocalStack, Settings]:
    """Topics (as the Topic Operator: super user), the platform configuration applied as
    smsflow-config, and a stack whose processes are not started yet."""
    harness = acl.settings()
    apply_topics(harness)
    sim_port = free_port()
    config = load_yaml(PLATFORM_CONFIG)
    config = config.model_copy(
        update={"smscs": tuple(s.model_copy(update={"port": sim_port}) for s in config.smscs)}
    )
    apply_config(kafka_connection(acl.settings("smsflow-config")), CONFIG, config)
    stack = LocalStack(home, stack_env(acl.settings("smsflow-worker").model_copy(
        update={"home": home})), SIM_CONFIG.absolute(), sim_port, workers=0, senders=0)
    return stack, harness


def test_every_process_runs_as_its_own_user_within_its_acls(acl_broker: AclBroker,
                                                            tmp_path: Path) -> None:
    stack, harness = _prepare(acl_broker, tmp_path)
    with stack:
        stack.add_worker(**acl_broker.env_of("smsflow-worker"))
        stack.add_sender(**acl_broker.env_of("smsflow-sender"))
        ports = _start_side_processes(stack, acl_broker, tmp_path / "logs")
        warm_up(harness, timeout_s=90)
        started = time.monotonic()
        result = run_flow(harness, make_traffic(MESSAGES, seed=13), timeout_s=FLOW_DEADLINE_S)
        took = time.monotonic() - started
        wait_until(lambda: _api_ready(ports["api"]), timeout_s=30, what="the API ready")
        stack.check_alive()
    assert result.lost == 0, f"no terminal state for {result.missing[:5]} ({took:.1f} s)"
    assert result.duplicates == 0
    logs = sorted((tmp_path / "logs").glob("*.log"))
    assert {log.stem for log in logs} >= {"worker-0", "sender", "webhooks", "api"}
    for log in logs:
        assert not _authz_errors(log), f"{log.name}: {_authz_errors(log)[:3]}"
    users = {f"User:{user}" for user in PROCESS_USERS}
    denied = [d for d in denials(acl_broker.broker.server_log) if d[0] in users]
    assert not denied, f"the broker denied: {sorted(set(denied))}"


def test_a_missing_acl_is_visible_in_time(acl_broker: AclBroker, tmp_path: Path) -> None:
    """Without Write on sms.sent the sender cannot record a submit: what it does about it
    must be visible (a log line naming the refusal, or the process ending) within the
    deadline, not a silent stall."""
    sender_acls = load_users()["smsflow-sender"].bindings
    write_sent = next(b for b in sender_acls if b.restype == ResourceType.TOPIC
                      and b.name == SENT and b.operation == AclOperation.WRITE)
    assert delete_acl(acl_broker.admin, write_sent) == 1
    stack, harness = _prepare(acl_broker, tmp_path)
    try:
        with stack:
            stack.add_worker(**acl_broker.env_of("smsflow-worker"))
            stack.add_sender(**acl_broker.env_of("smsflow-sender"))
            log = tmp_path / "logs" / "sender.log"
            run_flow(harness, make_traffic(5, seed=31), timeout_s=1)
            wait_until(lambda: bool(_authz_errors(log)) or not stack.processes[-1].alive(),
                       timeout_s=REFUSAL_DEADLINE_S + 60, what="the sender to report the refusal")
            print(_authz_errors(log)[:5], stack.processes[-1].alive())
    finally:
        create_acls(acl_broker.admin, [write_sent])
