"""Rules the rendered overlays must keep: scaling within partitions and SMSC bind allowances,
shutdown within the grace period, sized containers, no inlined secrets, a network policy for
every pod. Each reads what `kustomize build` produces, as the cluster would receive it."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.smpp.models import SmppClientConfig
from connectors.webhooks.service import WebhookOptions
from pipeline.roles import DELIVERY_TOPICS
from smsflow.cli import build_parser
from smsflow.settings import WorkerRole
from smsflow.topics import THROTTLED
from tests.k8s.tooling import (
    K8S,
    OVERLAYS,
    WORKER_ROLES,
    RoleReads,
    named,
    objects,
    of_kind,
    role_reads,
    settings_map,
)

#: connectors/sender/service.py: SenderService.drain_timeout_s, then producer.flush(10).
SENDER_IN_FLIGHT_DRAIN_S = 15.0
PRODUCER_FLUSH_S = 10.0

#: Environment variables a container may set to a literal: names, not secrets.
NOT_SECRET_ENV = {"SMSFLOW_KAFKA_SASL_USERNAME"}

PROCESSES = (*WORKER_ROLES, "smsflow-sender", "smsflow-webhooks", "smsflow-api",
             "smsflow-api-status", "smsflow-kafka-exporter")

#: Every role of `smsflow worker`, the split ones and the one of every stage (the CLI default).
ALL_ROLES: tuple[WorkerRole, ...] = ("all", "routing", "delivery")


def _platform(overlay: str) -> dict[str, Any]:
    """The overlay's platform configuration (the file its smsflow-platform ConfigMap holds)."""
    loaded: dict[str, Any] = yaml.safe_load((K8S / overlay / "platform.yaml").read_text())
    return loaded


def _field_default(cls: Any, name: str) -> float:
    value = {f.name: f.default for f in dataclasses.fields(cls)}[name]
    assert isinstance(value, float)
    return value


def _partitions(docs: list[dict[str, Any]], topic: str) -> int:
    matches = [t for t in of_kind(docs, "KafkaTopic") if t["spec"]["topicName"] == topic]
    assert len(matches) == 1, topic
    partitions: int = matches[0]["spec"]["partitions"]
    return partitions


def _reads(docs: list[dict[str, Any]], role: WorkerRole) -> RoleReads:
    """The group and topics of a worker of ``role`` with the overlay's settings."""
    settings = settings_map(docs)
    return role_reads(role, settings["SMSFLOW_APP_ID"], settings.get("SMSFLOW_TOPIC_PREFIX", ""))


def _topic_name(docs: list[dict[str, Any]], topic: str) -> str:
    """``topic`` without the overlay's topic prefix (KafkaTopics name the constants')."""
    return topic.removeprefix(settings_map(docs).get("SMSFLOW_TOPIC_PREFIX", ""))


def _bind_allowance(scaled_object: dict[str, Any]) -> dict[str, int]:
    text = scaled_object["metadata"]["annotations"]["smsflow.io/bind-allowance"]
    pairs = (item.split("=") for item in text.split(","))
    return {smsc.strip(): int(binds) for smsc, binds in pairs}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_platform_configuration_is_valid_apart_from_secret_references(overlay: str) -> None:
    """The ConfigMap's configuration passes the platform's own validation. `env:`/`file:`
    references are resolved by the secret-reference work; until it lands a reference
    stands in for a value here (the SMPP length limit would reject the reference itself)."""
    from smsflow.config.models import PlatformConfig

    config = _platform(overlay)
    for smsc in config.get("smscs", []):
        smsc["password"] = "x"
    PlatformConfig.model_validate(config)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_never_exceeds_partitions(overlay: str) -> None:
    """A worker replica beyond the partitions of every topic its role's group reads (as the
    role's agents subscribe them) gets no partition at all and idles."""
    docs = objects(overlay)
    for name, role in WORKER_ROLES.items():
        reads = _reads(docs, role)
        group_partitions = max(_partitions(docs, _topic_name(docs, topic))
                               for topic in reads.topics)
        worker = named(docs, "ScaledObject", name)["spec"]
        assert 1 <= worker["minReplicaCount"] <= worker["maxReplicaCount"] <= group_partitions, (
            name)
    sender = named(docs, "ScaledObject", "smsflow-sender")["spec"]
    assert 1 <= sender["minReplicaCount"] <= sender["maxReplicaCount"]
    assert sender["maxReplicaCount"] <= _partitions(docs, THROTTLED)
    assert sender["triggers"][0]["metadata"]["topic"] == THROTTLED


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_watches_the_cluster_the_processes_use(overlay: str) -> None:
    """KEDA's operator resolves names from its own namespace: its bootstrap must be the
    processes' Kafka service, fully qualified with the namespace the processes resolve it in."""
    docs = objects(overlay)
    settings = settings_map(docs)
    process_host, process_port = settings["SMSFLOW_KAFKA_BOOTSTRAP"].split(",")[0].split(":")
    for scaled in of_kind(docs, "ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]["name"]
        namespace = named(docs, "Deployment", target)["metadata"]["namespace"]
        host = process_host
        if "." not in host:  # a short name resolves in the processes' own namespace
            host = f"{host}.{namespace}.svc"
        assert scaled["spec"]["triggers"], scaled["metadata"]["name"]
        for trigger in scaled["spec"]["triggers"]:
            keda_bootstrap = trigger["metadata"]["bootstrapServers"]
            assert keda_bootstrap == f"{host}:{process_port}", scaled["metadata"]["name"]


def _role_of(deployment: dict[str, Any]) -> str:
    """The role a worker Deployment runs, as the CLI parses its arguments."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert container["command"] == ["smsflow"] and container["args"][0] == "worker"
    role: str = args.role or "all"  # no --role: $SMSFLOW_WORKER_ROLE, else all (not set here)
    return role


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_worker_role_runs_in_its_deployment_and_scales_on_its_own_group(
    overlay: str,
) -> None:
    """Each worker Deployment runs its role, and its ScaledObject reads the lag of the group
    that role's code joins (pipeline.app: the app id, or `<app id>-delivery`), on the topics
    its agents read. A trigger without a topic counts every topic the group holds a position
    on: allowed only where no other role leaves positions in that group. The app id's group
    keeps the delivery topics' positions of a worker of every stage after a switch to the
    split, so a routing trigger must name its topics."""
    docs = objects(overlay)
    assert "SMSFLOW_WORKER_ROLE" not in settings_map(docs), "the role is each Deployment's"
    workers = [d for d in of_kind(docs, "Deployment")
               if d["spec"]["template"]["spec"]["containers"][0]["args"][0] == "worker"]
    assert {d["metadata"]["name"] for d in workers} == set(WORKER_ROLES)
    for deployment in workers:
        name = deployment["metadata"]["name"]
        role = WORKER_ROLES[name]
        assert _role_of(deployment) == role, name
        reads = _reads(docs, role)
        scaled = named(docs, "ScaledObject", name)["spec"]
        assert scaled["scaleTargetRef"]["name"] == name
        triggers = [t["metadata"] for t in scaled["triggers"]]
        assert {t["consumerGroup"] for t in triggers} == {reads.group}, name
        # The topics read in this group by any role whose code joins it.
        sharing: set[str] = set()
        for other in ALL_ROLES:
            if _reads(docs, other).group == reads.group:
                sharing |= _reads(docs, other).topics
        if any("topic" not in t for t in triggers):
            assert len(triggers) == 1, f"{name}: one trigger for the whole group is enough"
            assert sharing == reads.topics, (
                f"{name}: group {reads.group} may hold positions on "
                f"{sorted(sharing - reads.topics)}, which role {role} never advances: name the "
                f"role's topics in its triggers")
        else:
            topics = [t["topic"] for t in triggers]
            assert len(topics) == len(set(topics)), f"{name}: a topic counted twice"
            assert set(topics) == reads.topics, name
    # The hand-over (pipeline.roles.hand_over) copies positions on these topics only: the
    # delivery role's group holds no others, which is what lets its trigger name no topic.
    prefix = settings_map(docs).get("SMSFLOW_TOPIC_PREFIX", "")
    assert _reads(docs, "delivery").topics == {prefix + topic for topic in DELIVERY_TOPICS}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_worker_roles_differ_only_in_name_role_and_group(overlay: str) -> None:
    """One shape (k8s/base/worker) for both roles: the same probes, security context, volumes,
    credentials, resources and grace period; the same scaling behaviour and thresholds."""
    docs = objects(overlay)

    def deployment_shape(name: str) -> dict[str, Any]:
        deployment = copy.deepcopy(named(docs, "Deployment", name))
        del deployment["metadata"]["name"]
        for labels in (deployment["metadata"]["labels"],
                       deployment["spec"]["selector"]["matchLabels"],
                       deployment["spec"]["template"]["metadata"]["labels"]):
            assert labels.pop("app.kubernetes.io/name") == name
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[1:3] == ["--role", WORKER_ROLES[name]], args
        del args[1:3]
        shape: dict[str, Any] = deployment
        return shape

    def scaling_shape(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        spec = copy.deepcopy(named(docs, "ScaledObject", name)["spec"])
        assert spec.pop("scaleTargetRef") == {"name": name}
        triggers = spec.pop("triggers")
        for trigger in triggers:
            del trigger["metadata"]["consumerGroup"]
            trigger["metadata"].pop("topic", None)
        return spec, triggers

    by_role = {role: name for name, role in WORKER_ROLES.items()}
    routing, delivery = by_role["routing"], by_role["delivery"]
    assert deployment_shape(routing) == deployment_shape(delivery)
    routing_spec, routing_triggers = scaling_shape(routing)
    delivery_spec, delivery_triggers = scaling_shape(delivery)
    assert routing_spec == delivery_spec
    for trigger in routing_triggers + delivery_triggers:
        assert trigger == delivery_triggers[0]


def test_prod_runs_two_workers_of_each_role() -> None:
    """A worker's death costs its group a rebalance, not an outage of its half of the flow."""
    docs = objects("overlays/prod")
    for name in WORKER_ROLES:
        assert named(docs, "ScaledObject", name)["spec"]["minReplicaCount"] >= 2, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sender_replicas_never_hold_more_binds_than_an_smsc_allows(overlay: str) -> None:
    """With bind leases all sender replicas together hold at most an SMSC's configured `binds`
    (tests/integration/test_bind_leases.py proves it against the simulator), at any replica
    count and during a rolling update; so the configured `binds` must fit each allowance."""
    docs = objects(overlay)
    settings = next(c for c in of_kind(docs, "ConfigMap")
                    if c["metadata"]["name"].startswith("smsflow-settings"))["data"]
    assert settings["SMSFLOW_SENDER_BIND_LEASES"] == "true", "more than one sender may run"
    scaled = named(docs, "ScaledObject", "smsflow-sender")
    allowance = _bind_allowance(scaled)
    deployment = named(docs, "Deployment", "smsflow-sender")["spec"]
    assert "replicas" not in deployment, "KEDA owns the sender's replica count"
    for smsc in _platform(overlay)["smscs"]:
        binds = smsc.get("binds", 1)
        assert smsc["id"] in allowance, f"{overlay}: no bind allowance for {smsc['id']}"
        assert binds <= allowance[smsc["id"]], (
            f"{overlay}: {smsc['id']} is configured with {binds} binds, over its allowance "
            f"of {allowance[smsc['id']]}"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_periods_cover_the_drains(overlay: str) -> None:
    docs = objects(overlay)
    binds = sum(smsc.get("binds", 1) for smsc in _platform(overlay)["smscs"])
    sender_drain = (SENDER_IN_FLIGHT_DRAIN_S
                    + binds * _field_default(SmppClientConfig, "close_timeout_s")
                    + PRODUCER_FLUSH_S)
    webhooks_drain = _field_default(WebhookOptions, "drain_timeout_s") + PRODUCER_FLUSH_S

    def grace(name: str) -> int:
        value: int = named(docs, "Deployment", name)["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"]
        return value

    assert grace("smsflow-sender") >= sender_drain, f"sender drain takes up to {sender_drain}s"
    assert grace("smsflow-webhooks") >= webhooks_drain
    for worker in WORKER_ROLES:
        assert grace(worker) >= PRODUCER_FLUSH_S, worker


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_sized_and_locked_down(overlay: str) -> None:
    for deployment in of_kind(objects(overlay), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            where = f"{overlay}: {deployment['metadata']['name']}/{container['name']}"
            resources = container["resources"]
            for kind in ("cpu", "memory"):
                assert kind in resources["requests"], where
                assert kind in resources["limits"], where
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_only_where_a_real_health_endpoint_exists(overlay: str) -> None:
    docs = objects(overlay)
    api = named(docs, "Deployment", "smsflow-api")["spec"]["template"]["spec"]
    for name in WORKER_ROLES:
        worker = named(docs, "Deployment", name)["spec"]["template"]["spec"]
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            command = " ".join(worker["containers"][0][probe]["exec"]["command"])
            assert path in command, name  # pipeline/web.py's probe pages
    for spec in (api, named(docs, "Deployment", "smsflow-sender")["spec"]["template"]["spec"]):
        assert spec["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert spec["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    webhooks = named(docs, "Deployment", "smsflow-webhooks")["spec"]["template"]["spec"]
    assert not {"livenessProbe", "readinessProbe"} & set(webhooks["containers"][0]), (
        "smsflow-webhooks has no health endpoint yet (k8s/README.md): no probe may pretend one"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_inlined(overlay: str) -> None:
    docs = objects(overlay)
    for workload in of_kind(docs, "Deployment") + of_kind(docs, "Job"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                assert "value" not in variable or variable["name"] in NOT_SECRET_ENV, (
                    f"{workload['metadata']['name']}: env {variable['name']} is inlined"
                )
    settings = next(c for c in of_kind(docs, "ConfigMap")
                    if c["metadata"]["name"].startswith("smsflow-settings"))
    for key, value in settings["data"].items():
        if any(word in key for word in ("PASSWORD", "SECRET", "PEPPER", "KEY")):
            assert value.startswith(("env:", "file:")), f"{overlay}: {key} is inlined"
    platform_map = next(c for c in of_kind(docs, "ConfigMap")
                        if c["metadata"]["name"].startswith("smsflow-platform"))
    platform = yaml.safe_load(platform_map["data"]["platform.yaml"])
    secrets_in_config = [smsc["password"] for smsc in platform.get("smscs", [])] + [
        tenant["webhook"]["secret"] for tenant in platform.get("tenants", [])
        if tenant.get("webhook")]
    for value in secrets_in_config:
        assert str(value).startswith(("env:", "file:")), f"{overlay}: inlined secret {value!r}"
    secrets = of_kind(docs, "Secret")
    if overlay == "overlays/prod":
        assert secrets == [], "production Secrets are created out of band, never committed"
    else:
        for secret in secrets:  # the dev overlay's, generated with obviously fake values
            assert secret["metadata"]["name"].startswith("smsflow-")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_covered_by_the_default_deny_policy(overlay: str) -> None:
    docs = objects(overlay)
    deny = named(docs, "NetworkPolicy", "smsflow-default-deny")["spec"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    selector = deny["podSelector"]["matchLabels"]
    for workload in of_kind(docs, "Deployment") + of_kind(docs, "Job"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), workload["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_process_has_a_disruption_budget_and_a_metrics_scrape(overlay: str) -> None:
    docs = objects(overlay)
    budgets = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
               for b in of_kind(docs, "PodDisruptionBudget")}
    assert budgets == set(PROCESSES)
    monitor = named(docs, "ServiceMonitor", "smsflow")["spec"]
    scraped = {s["metadata"]["name"] for s in of_kind(docs, "Service")
               if monitor["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()}
    assert scraped == set(PROCESSES)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_may_reach_every_scraped_port(overlay: str) -> None:
    """Every Service the ServiceMonitor scrapes selects pods of some Deployment, and the
    default-deny namespace lets Prometheus reach each one on the container port its scraped
    port targets (smsflow-metrics-scrape): a Service per worker role, each port open."""
    docs = objects(overlay)
    policy = named(docs, "NetworkPolicy", "smsflow-metrics-scrape")["spec"]
    open_ports = {port["port"] for rule in policy["ingress"] for port in rule["ports"]}
    monitor = named(docs, "ServiceMonitor", "smsflow")["spec"]
    scraped_names = {endpoint["port"] for endpoint in monitor["endpoints"]}
    services = [s for s in of_kind(docs, "Service")
                if monitor["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    for service in services:
        name = service["metadata"]["name"]
        selected = [d for d in of_kind(docs, "Deployment")
                    if service["spec"]["selector"].items()
                    <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert selected, f"{name} selects no pod"
        ports = [p for p in service["spec"]["ports"] if p["name"] in scraped_names]
        assert ports, f"{name} has no port the ServiceMonitor scrapes"
        for deployment in selected:
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert policy["podSelector"]["matchLabels"].items() <= labels.items(), name
            container_ports = {p["name"]: p["containerPort"]
                               for c in deployment["spec"]["template"]["spec"]["containers"]
                               for p in c.get("ports", [])}
            for port in ports:
                target = port["targetPort"]
                number = container_ports[target] if isinstance(target, str) else target
                assert number in open_ports, f"{name}: port {number} closed to Prometheus"


def test_no_overlay_file_is_left_out_of_its_kustomization() -> None:
    """Every YAML file next to a kustomization.yaml is used by it (a forgotten file would be a
    manifest nobody deploys or validates)."""
    for kustomization in K8S.rglob("kustomization.yaml"):
        text = kustomization.read_text()
        for path in kustomization.parent.glob("*.yaml"):
            if path.name != "kustomization.yaml":
                assert path.name in text, f"{path.relative_to(K8S)} is not used"


def test_the_dev_secrets_are_obviously_fake() -> None:
    text = Path(K8S / "overlays/dev/kustomization.yaml").read_text()
    generator = yaml.safe_load(text)["secretGenerator"]
    for secret in generator:
        for literal in secret["literals"]:
            value = literal.split("=", 1)[1]
            assert value.startswith(("fake-", "dev-only-fake-")), literal
