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

import json
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic, ResourceType
from pydantic import SecretStr

from connectors.producer import SmsProducer, new_request
from schemas.models import Rejection, SubmitRequest
from smsflow.config.kafka_io import apply_config
from smsflow.config.models import Inbound, Webhook
from smsflow.config.store import load_yaml
from smsflow.devstack.broker import LocalBroker
from smsflow.devstack.broker_sasl import upsert_scram_credentials
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import free_port, read_all
from smsflow.devstack.stack import LocalStack, ManagedProcess, stack_env
from smsflow.domain.inbound import OPTED_OUT
from smsflow.kafka_clients import client_config, producer_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import CONFIG, HELD, REJECTED, SENT, SUBMITTED, apply_topics
from tests.integration.kafka_acls import create_acls, delete_acl, denials, load_users
from tests.integration.simulators import platform_simulator
from tests.integration.waiting import log_shows, log_size, wait_until
from tests.paths import PLATFORM_CONFIG, REPO_ROOT, SIM_CONFIG

pytestmark = pytest.mark.slow

PROCESS_USERS = ("smsflow-worker", "smsflow-sender", "smsflow-webhooks", "smsflow-api",
                 "smsflow-api-status", "smsflow-config", "smsflow-kafka-exporter")
#: What a client says when the broker refuses an operation (librdkafka, aiokafka, Kafka).
AUTHZ_MARKERS = ("AUTHORIZATION_FAILED", "AuthorizationFailed", "AuthorizationError",
                 "Not authorized", "not authorized")
PEPPER = "acl-test-pepper-0123456789abcdef"
TENANT = "acme-bank"
SHORT_CODE = "60001"  # the tenant's inbound number in this test's configuration
SUBSCRIBER = "+447700900199"  # sends STOP to it
MESSAGES = 200
FLOW_DEADLINE_S = 60.0
REFUSAL_DEADLINE_S = 15.0
"""The sender must have logged the refusal by then (measured: ~1 s: route, throttle, submit)."""


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
    broker.exit_with_starter = True  # a killed test run must not leave it behind
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
        acl = AclBroker(broker, admin, passwords, home)
        apply_topics(acl.settings())  # as the Topic Operator would: not a process's business
        yield acl
    finally:
        broker.stop(30)


def test_the_broker_enforces_acls_on_sasl_ssl_only(acl_broker: AclBroker) -> None:
    """Deny by default on SASL_SSL: a process user may not write a topic no ACL names; the
    PLAINTEXT listener (the super user) may. (A topic of its own: no process reads it.)"""
    props = acl_broker.broker.config.properties()
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:ANONYMOUS;User:smsflow"
    acl_broker.admin.create_topics([NewTopic("acl-probe", 1, 1)])["acl-probe"].result(30)
    outcomes: list[KafkaError | None] = []
    for target in (kafka_connection(acl_broker.settings("smsflow-webhooks")),
                   f"127.0.0.1:{acl_broker.broker.port}"):
        producer = Producer(producer_config(target))
        producer.produce("acl-probe", b"probe", on_delivery=lambda e, _m: outcomes.append(e))
        assert producer.flush(30) == 0
    refused, allowed = outcomes
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert allowed is None


@dataclass
class HookReceiver:
    """The tenant's webhook endpoint: records each POST's event header and JSON body."""

    port: int = 0
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append((self.headers.get("X-Smsflow-Event", ""), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def mo(self) -> list[dict[str, Any]]:
        return [body for event, body in list(self.posts) if event == "mo"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _stack_config(sim_port: int, hook_port: int) -> Any:
    """The platform configuration on this test's simulator, with the tenant owning a short
    code and a webhook, so MO and STOP take their paths through every process."""
    config = load_yaml(PLATFORM_CONFIG)
    tenants = tuple(
        tenant.model_copy(update={
            "inbound": Inbound(numbers=(SHORT_CODE,)),
            "webhook": Webhook.model_validate({
                "url": f"http://127.0.0.1:{hook_port}/hook",
                "secret": SecretStr("acl-test-webhook-secret-0123456789")}),
        }) if tenant.id == TENANT else tenant
        for tenant in config.tenants
    )
    smscs = tuple(s.model_copy(update={"port": sim_port}) for s in config.smscs)
    return config.model_copy(update={"tenants": tenants, "smscs": smscs})


def _authz_errors(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return [line for line in lines if any(marker in line for marker in AUTHZ_MARKERS)]


def _start_side_processes(stack: LocalStack, acl: AclBroker, logs: Path, api_port: int,
                          exporter_port: int) -> None:
    """Webhooks, the API's two roles as k8s/base/api.yaml runs them (submit, forwarding the
    status GETs to all) and the lag exporter, each as its own user."""
    status_port = free_port()
    extra = {
        "webhooks": (["webhooks", "run", "--metrics-port", "0"], "smsflow-webhooks", {}),
        "api": (["api", "--role", "submit", "--status-url", f"http://127.0.0.1:{status_port}"],
                "smsflow-api", {"SMSFLOW_API_KEY_PEPPER": PEPPER,
                                "SMSFLOW_API_PORT": str(api_port)}),
        "api-status": (["api", "--role", "all"], "smsflow-api-status",
                       {"SMSFLOW_API_KEY_PEPPER": PEPPER, "SMSFLOW_API_PORT": str(status_port)}),
        "kafka-exporter": (["kafka-exporter", "--port", str(exporter_port)],
                           "smsflow-kafka-exporter", {}),
    }
    for name, (argv, user, env) in extra.items():
        process = ManagedProcess(name, [*stack.smsflow_argv(), *argv], logs / f"{name}.log")
        process.start({**stack.env, **acl.env_of(user), **env})
        stack.processes.append(process)


def _http(method: str, url: str, key: str, body: dict[str, Any] | None = None,
          idempotency_key: str | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}
    except (urllib.error.URLError, OSError):
        return 0, {}  # not listening yet


def _cli(stack: LocalStack, acl: AclBroker, user: str, *args: str) -> str:
    """``smsflow ARGS`` as ``user`` (a one-off process, like a Job or a command in a pod)."""
    done = subprocess.run(
        [*stack.smsflow_argv(), *args],
        env={**stack.env, **acl.env_of(user), "SMSFLOW_API_KEY_PEPPER": PEPPER},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@dataclass
class ApiClient:
    port: int
    key: str

    def post(self, idempotency_key: str | None = None) -> tuple[int, dict[str, Any]]:
        return _http("POST", f"http://127.0.0.1:{self.port}/v1/messages", self.key,
                     {"destination": "+447700900123", "source": "ACME", "body": "over ACLs"},
                     idempotency_key)

    def post_batch(self, size: int) -> tuple[int, dict[str, Any]]:
        return _http("POST", f"http://127.0.0.1:{self.port}/v1/messages/batch", self.key,
                     {"messages": [{"destination": "+447700900123", "source": "ACME",
                                    "body": f"batch {n}"} for n in range(size)]})

    def final_state(self, message_id: str) -> dict[str, Any]:
        final: dict[str, Any] = {}

        def terminal() -> bool:
            status, body = _http("GET", f"http://127.0.0.1:{self.port}/v1/messages/{message_id}",
                                 self.key)
            final.update(body)
            return status == 200 and bool(body.get("terminal"))

        wait_until(terminal, timeout_s=30, what=f"a terminal state of {message_id}")
        return final


def _through_the_api(stack: LocalStack, acl: AclBroker, api_port: int
                     ) -> tuple[ApiClient, list[dict[str, Any]]]:
    """A key made as the status role's user (`smsflow tenants key create`, run in a status
    pod); through the submit role: one message posted with an Idempotency-Key and retried (the
    same answer, nothing produced twice), a batch of two, and each message's status followed
    to the end with GET /v1/messages/{id}, which the submit role forwards to the status role
    (it keeps no store: a 200 from it is the status role's answer)."""
    api = ApiClient(api_port, _cli(stack, acl, "smsflow-api-status", "tenants", "key",
                                   "create", TENANT, "--quiet").strip())
    posted: dict[str, Any] = {}

    def accepted() -> bool:  # the API may still be starting, or not yet know the new key
        status, body = api.post(idempotency_key="acl-order-1")
        posted.update(body)
        return status == 202

    wait_until(accepted, timeout_s=30, what="the API to accept a message")
    assert api.post(idempotency_key="acl-order-1") == (202, posted)
    status, batch = api.post_batch(2)
    assert status == 202, batch
    ids = [posted["message_id"], *(m["message_id"] for m in batch["messages"])]
    return api, [api.final_state(message_id) for message_id in ids]


def _quarantine_and_release(stack: LocalStack, acl: AclBroker, api: ApiClient,
                            harness: Settings) -> list[dict[str, Any]]:
    """`smsflow tenants quarantine|release` as smsflow-config; messages written to Kafka
    meanwhile are parked by the worker on sms.held and sent back on release."""
    _cli(stack, acl, "smsflow-config", "tenants", "quarantine", TENANT, "--reason", "acl test")
    wait_until(lambda: api.post()[0] == 403, timeout_s=30, what="the API to see the quarantine")
    held = [new_request(TENANT, "+447700900123", f"held {n}") for n in range(3)]
    producer = SmsProducer(kafka_connection(harness), SUBMITTED)
    for request in held:
        producer.submit(request)
    assert producer.flush(30) == 0
    wait_until(lambda: len(read_all(harness, HELD)) >= len(held), timeout_s=30,
               what="the worker to park the quarantined tenant's messages")
    _cli(stack, acl, "smsflow-config", "tenants", "release", TENANT, "--reason", "cleared")
    return [api.final_state(request.message_id) for request in held]


class ExporterScrapes:
    """``smsflow_kafka_up`` of each scrape of the exporter (it reads Kafka on every scrape),
    and the groups it last saw; a scrape it does not answer yet counts as nothing."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.up: list[float] = []
        self.groups: set[str] = set()

    def on_progress(self, _counts: dict[str, int], _done: int) -> None:
        self.scrape()

    def scrape(self) -> bool:
        """Scrape once; False if the exporter did not answer."""
        try:
            with urllib.request.urlopen(self.url, timeout=10) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError):
            return False
        for line in text.splitlines():
            if line.startswith("smsflow_kafka_up "):
                self.up.append(float(line.split()[1]))
            elif line.startswith("smsflow_kafka_consumer_group_members{"):
                self.groups.add(line.split('group="', 1)[1].split('"', 1)[0])
        return True


def _kafka_user(pid: int) -> str | None:
    """The Kafka user a running process was given (its environment, as the kernel has it)."""
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        name, _, value = entry.decode(errors="replace").partition("=")
        if name == "SMSFLOW_KAFKA_SASL_USERNAME":
            return value
    return None


@dataclass
class RunningStack:
    acl: AclBroker
    stack: LocalStack
    harness: Settings
    logs: Path
    api_port: int
    exporter_port: int
    users: dict[str, str | None]  # process -> the Kafka user it was started with
    denials_before: int  # denials the broker had logged before the stack started
    sim: Any  # the SMSC simulator (in this process: the MO test originates through it)
    hooks: HookReceiver


@pytest.fixture(scope="module")
def running(acl_broker: AclBroker, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RunningStack]:
    """The platform configuration applied as smsflow-config (like the config Job), then the
    simulator and every process as its own user, serving (one probe message completed)."""
    home = tmp_path_factory.mktemp("acl-stack")
    denials_before = len(denials(acl_broker.broker.server_log))
    harness = acl_broker.settings()
    sim, hooks = platform_simulator(seed=13), HookReceiver()
    config = _stack_config(sim.port, hooks.port)
    apply_config(kafka_connection(acl_broker.settings("smsflow-config")), CONFIG, config)
    stack = LocalStack(home, stack_env(acl_broker.settings("smsflow-worker").model_copy(
        update={"home": home})), SIM_CONFIG.absolute(), sim.port, workers=0, senders=0,
        simulator=False)
    try:
        with stack:
            stack.add_worker(**acl_broker.env_of("smsflow-worker"))
            stack.add_sender(**acl_broker.env_of("smsflow-sender"))
            api_port, exporter_port = free_port(), free_port()
            _start_side_processes(stack, acl_broker, home / "logs", api_port, exporter_port)
            warm_up(harness, timeout_s=90)
            # Read once every process has exec'd: a child read between fork and exec still
            # shows this test's environment (seen once: webhooks with no Kafka user).
            users = {name: _kafka_user(pid) for name, pid in stack.pids().items()}
            yield RunningStack(acl_broker, stack, harness, home / "logs", api_port,
                               exporter_port, users, denials_before, sim, hooks)
    finally:
        hooks.close()
        sim.stop()


def test_every_process_runs_as_its_own_user_within_its_acls(running: RunningStack) -> None:
    stack, harness = running.stack, running.harness
    exporter = ExporterScrapes(running.exporter_port)
    started = time.monotonic()
    # Scraped while messages are in flight too: a lagging partition makes the exporter read a
    # record (its timestamp), which needs its own group and Read.
    result = run_flow(harness, make_traffic(MESSAGES, seed=13), timeout_s=FLOW_DEADLINE_S,
                      on_progress=exporter.on_progress)
    took = time.monotonic() - started
    api, via_api = _through_the_api(stack, running.acl, running.api_port)
    submitted_ids = [SubmitRequest.from_avro(v).message_id for v in read_all(harness, SUBMITTED)]
    released = _quarantine_and_release(stack, running.acl, api, harness)
    wait_until(exporter.scrape, timeout_s=30, what="a scrape of the exporter")
    stack.check_alive()
    assert running.users == {"worker-0": "smsflow-worker", "sender": "smsflow-sender",
                             "webhooks": "smsflow-webhooks", "api": "smsflow-api",
                             "api-status": "smsflow-api-status",
                             "kafka-exporter": "smsflow-kafka-exporter"}
    assert set(exporter.up) == {1.0}, exporter.up
    assert {"smsflow", "smsflow-sender", "smsflow-webhooks"} <= exporter.groups
    # The simulator fails 2% of UK messages at random: any receipt's state will do.
    # The idempotent retry produced nothing: each API message is on sms.submitted once.
    assert all(submitted_ids.count(final["message_id"]) == 1 for final in via_api), via_api
    for final in (*via_api, *released):
        assert final["state"] in {"DELIVERED", "UNDELIVERABLE", "EXPIRED"}, final
        assert final["parts_accepted"] == final["parts"] == 1
    assert result.lost == 0, f"no terminal state for {result.missing[:5]} ({took:.1f} s)"
    assert result.duplicates == 0
    logs = sorted(running.logs.glob("*.log"))
    assert {log.stem for log in logs} >= {"worker-0", "sender", "webhooks", "api",
                                          "api-status", "kafka-exporter"}
    for log in logs:
        assert not _authz_errors(log), f"{log.name}: {_authz_errors(log)[:3]}"
    principals = {f"User:{user}" for user in PROCESS_USERS}
    denied = [d for d in denials(running.acl.broker.server_log)[running.denials_before:]
              if d[0] in principals]
    assert not denied, f"the broker denied: {sorted(set(denied))}"


def _rejection_of(harness: Settings, message_id: str) -> Rejection | None:
    for value in read_all(harness, REJECTED):
        rejection = Rejection.from_avro(value)
        if rejection.message_id == message_id:
            return rejection
    return None


def test_mo_and_stop_take_their_paths_within_the_acls(running: RunningStack) -> None:
    """A subscriber's STOP to the tenant's short code: the sender publishes it on
    sms.inbound, the webhooks connector POSTs it to the tenant, the API lists it on
    GET /v1/inbound (the submit role forwarding it to the status role), the worker puts the
    number on the tenant's opt-out list, and the router
    then refuses a message to it with OPTED_OUT: each process on its own user, nothing
    denied. Runs after the flow test above (same stack), before the ACL is revoked below."""
    stack, harness, acl = running.stack, running.harness, running.acl
    running.sim.originate("smsc-uk", SUBSCRIBER, SHORT_CODE, "STOP")
    wait_until(lambda: bool(running.hooks.mo()), timeout_s=30, what="the MO POSTed to the tenant")
    [mo] = running.hooks.mo()
    assert (mo["tenant_id"], mo["source"], mo["text"]) == (TENANT, SUBSCRIBER, "STOP"), mo

    key = _cli(stack, acl, "smsflow-api-status", "tenants", "key", "create", TENANT,
               "--quiet").strip()
    listed: dict[str, Any] = {}

    def in_the_inbound_list() -> bool:  # the new key and the store may take a moment
        status, body = _http("GET", f"http://127.0.0.1:{running.api_port}/v1/inbound", key)
        listed.update(body)
        return status == 200 and bool(body.get("messages"))

    wait_until(in_the_inbound_list, timeout_s=30, what="GET /v1/inbound to list the STOP")
    assert [m["text"] for m in listed["messages"]] == ["STOP"], listed

    producer = SmsProducer(kafka_connection(harness), SUBMITTED)
    refused: list[Rejection] = []

    def opted_out() -> bool:
        # The worker reads sms.inbound on its own: a message sent before it stored the STOP
        # is delivered, so send another until one is refused.
        request = new_request(TENANT, SUBSCRIBER, "after STOP")
        producer.submit(request)
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = _rejection_of(harness, request.message_id)
            if found is not None:
                refused.append(found)
                return True
            time.sleep(0.5)
        return False

    wait_until(opted_out, timeout_s=45, what="a message to the opted-out number refused")
    assert refused[-1].reason_code == OPTED_OUT, refused[-1]
    for log in sorted(running.logs.glob("*.log")):
        assert not _authz_errors(log), f"{log.name}: {_authz_errors(log)[:3]}"
    principals = {f"User:{user}" for user in PROCESS_USERS}
    denied = [d for d in denials(acl.broker.server_log)[running.denials_before:]
              if d[0] in principals]
    assert not denied, f"the broker denied: {sorted(set(denied))}"


def test_a_revoked_acl_is_visible_in_time(running: RunningStack) -> None:
    """Without Write on sms.sent the sender cannot record a submit. What the code does
    (measured): the broker answers TOPIC_AUTHORIZATION_FAILED at once and the sender logs it
    as an ERROR per part ("submit outcome of … not stored") within ~1 s; it keeps running and
    leaves the offset uncommitted, so the message gets no terminal report until the ACL is
    back and the sender restarts (then the part is in doubt and resubmitted). The broker's log
    names the principal, operation and topic. Runs after the test above (same stack)."""
    acl = running.acl
    write_sent = next(b for b in load_users()["smsflow-sender"].bindings
                      if b.restype == ResourceType.TOPIC and b.name == SENT
                      and b.operation == AclOperation.WRITE)
    sender_log = running.logs / "sender.log"
    denied_before = len(denials(acl.broker.server_log))
    log_end = log_size(sender_log)
    assert delete_acl(acl.admin, write_sent) == 1
    try:
        producer = SmsProducer(kafka_connection(running.harness), SUBMITTED)
        for n in range(3):
            producer.submit(new_request(TENANT, "+447700900123", f"no sent {n}"))
        assert producer.flush(30) == 0
        produced = time.monotonic()
        refusal = log_shows(sender_log, "TOPIC_AUTHORIZATION_FAILED", after=log_end,
                            timeout_s=REFUSAL_DEADLINE_S)
        took = time.monotonic() - produced
        sender_alive = next(p for p in running.stack.processes if p.name == "sender").alive()
        # Its graceful stop would wait out its drain deadline (~15 s) for the refused
        # outcomes; a SIGKILL is as safe (Kafka keeps the uncommitted records).
        running.stack.kill_process("sender")
    finally:
        create_acls(acl.admin, [write_sent])
    assert "ERROR" in refusal and "not stored" in refusal, refusal
    assert sender_alive  # it does not stop: the ERROR lines (and the stuck offset) are the signal
    new_denials = set(denials(acl.broker.server_log)[denied_before:])
    assert new_denials == {("User:smsflow-sender", "WRITE", "Topic", "LITERAL", SENT)}
    print(f"refusal logged {took:.1f} s after the messages were produced")
