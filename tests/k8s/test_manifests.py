"""Rules the rendered overlays must keep: scaling within partitions and SMSC bind allowances,
shutdown within the grace period, sized containers, no inlined secrets, a network policy for
every pod. Each reads what `kustomize build` produces, as the cluster would receive it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.smpp.models import SmppClientConfig
from connectors.webhooks.service import WebhookOptions
from smsflow.topics import CONFIG, THROTTLED
from tests.k8s.tooling import K8S, OVERLAYS, named, objects, of_kind

#: connectors/sender/service.py: SenderService.drain_timeout_s, then producer.flush(10).
SENDER_IN_FLIGHT_DRAIN_S = 15.0
PRODUCER_FLUSH_S = 10.0

#: Environment variables a container may set to a literal: names, not secrets.
NOT_SECRET_ENV = {"SMSFLOW_KAFKA_SASL_USERNAME"}

PROCESSES = ("smsflow-worker", "smsflow-sender", "smsflow-webhooks", "smsflow-api",
             "smsflow-api-status", "smsflow-kafka-exporter")


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
    docs = objects(overlay)
    flow_partitions = max(
        t["spec"]["partitions"] for t in of_kind(docs, "KafkaTopic")
        if t["spec"]["topicName"] != CONFIG  # read by assignment, not by the group
    )
    worker = named(docs, "ScaledObject", "smsflow-worker")["spec"]
    sender = named(docs, "ScaledObject", "smsflow-sender")["spec"]
    assert 1 <= worker["minReplicaCount"] <= worker["maxReplicaCount"] <= flow_partitions
    assert 1 <= sender["minReplicaCount"] <= sender["maxReplicaCount"]
    assert sender["maxReplicaCount"] <= _partitions(docs, THROTTLED)
    assert sender["triggers"][0]["metadata"]["topic"] == THROTTLED


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_watches_the_cluster_the_processes_use(overlay: str) -> None:
    """KEDA's operator resolves names from its own namespace: its bootstrap must be the
    processes' Kafka service, fully qualified with the namespace the processes resolve it in."""
    docs = objects(overlay)
    settings = next(c for c in of_kind(docs, "ConfigMap")
                    if c["metadata"]["name"].startswith("smsflow-settings"))["data"]
    process_host, process_port = settings["SMSFLOW_KAFKA_BOOTSTRAP"].split(",")[0].split(":")
    namespace = named(docs, "Deployment", "smsflow-worker")["metadata"]["namespace"]
    if "." not in process_host:  # a short name resolves in the processes' own namespace
        process_host = f"{process_host}.{namespace}.svc"
    for scaled in of_kind(docs, "ScaledObject"):
        keda_bootstrap = scaled["spec"]["triggers"][0]["metadata"]["bootstrapServers"]
        assert keda_bootstrap == f"{process_host}:{process_port}", scaled["metadata"]["name"]


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
    assert grace("smsflow-worker") >= PRODUCER_FLUSH_S


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
    worker = named(docs, "Deployment", "smsflow-worker")["spec"]["template"]["spec"]
    api = named(docs, "Deployment", "smsflow-api")["spec"]["template"]["spec"]
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        command = " ".join(worker["containers"][0][probe]["exec"]["command"])
        assert path in command  # pipeline/web.py's probe pages
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
