"""Every Kafka client the overlays run logs in to Kafka as its own KafkaUser, over TLS with
SCRAM-SHA-512, so the brokers enforce that user's ACLs: the cluster has no other listener, each
workload's settings select SASL_SSL on the 9093 listener, name its user, and point at files that
a read-only volume fills from the user's Secret and the cluster CA's Secret; KEDA logs in the
same way. Each check reads what `kustomize build` produces."""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath
from typing import Any

import pytest

from smsflow.settings import Settings
from tests.k8s.tooling import K8S, OVERLAYS, WORKER_ROLES, objects, of_kind

#: `smsflow` sub-commands that never talk to Kafka (the dev overlay's SMSC simulator).
NOT_KAFKA_COMMANDS = {"smsc-sim"}
CLIENT_LABEL = "smsflow.io/kafka-client"
TLS_SCRAM_PORT = 9093
#: The only KafkaUser more than one workload logs in as, and exactly the workloads that do: the
#: worker's two Deployments run one program (`smsflow worker`, split by --role), whose ACLs
#: are derived from all of its code (tests/k8s/test_kafka_access.py).
SHARED_USERS = {"smsflow-worker": set(WORKER_ROLES)}


def _settings_map(docs: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = next(
        c for c in of_kind(docs, "ConfigMap")
        if c["metadata"]["name"].startswith("smsflow-settings"))["data"]
    return data


def _kafka(docs: list[dict[str, Any]]) -> dict[str, Any]:
    clusters = of_kind(docs, "Kafka")
    assert len(clusters) <= 1
    if clusters:
        return clusters[0]
    # prod: the existing cluster, of which k8s/kafka/cluster is the reference spec
    return of_kind(objects("kafka/cluster"), "Kafka")[0]


def _workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return of_kind(docs, "Deployment") + of_kind(docs, "Job")


def _is_kafka_client(workload: dict[str, Any]) -> bool:
    container = workload["spec"]["template"]["spec"]["containers"][0]
    return container["command"] == ["smsflow"] and container["args"][0] not in NOT_KAFKA_COMMANDS


def _clients(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [w for w in _workloads(docs) if _is_kafka_client(w)]


def _environment(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The SMSFLOW_* variables the container starts with: the settings ConfigMap (envFrom),
    then its own `env`, which wins, as in Kubernetes."""
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source.get("configMapRef", {}).get("name", "")
        if name.startswith("smsflow-settings"):
            environment |= _settings_map(docs)
    for variable in container.get("env") or []:  # `env:` left empty builds as null
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
    return environment


def _mode_of(volume: dict[str, Any], item: dict[str, Any]) -> int:
    source = volume.get("projected") or volume["secret"]
    mode: int = item.get("mode", source.get("defaultMode", 0o644))
    return mode


def secret_behind(pod: dict[str, Any], container: dict[str, Any], path: str
                  ) -> tuple[str, str, int, bool]:
    """(Secret name, key, file mode, read-only) of the file `path` in `container`: the mount
    that holds it, its volume (a `secret` or a `projected` one) and the item mapped to it."""
    target = PurePosixPath(path)
    mounts = [m for m in container.get("volumeMounts", [])
              if target.is_relative_to(PurePosixPath(m["mountPath"]))]
    assert mounts, f"{container['name']}: nothing is mounted at {path}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    relative = str(target.relative_to(PurePosixPath(mount["mountPath"])))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    if "projected" in volume:
        sources = [s["secret"] for s in volume["projected"]["sources"] if "secret" in s]
    else:
        assert "secret" in volume, f"{container['name']}: {path} is not from a Secret"
        sources = [volume["secret"] | {"name": volume["secret"]["secretName"]}]
    for source in sources:
        for item in source.get("items", []):
            if item["path"] == relative:
                return (source["name"], item["key"], _mode_of(volume, item),
                        bool(mount.get("readOnly")))
    raise AssertionError(f"{container['name']}: no Secret item maps to {path}")


def _readable_by_the_process(pod: dict[str, Any], mode: int) -> bool:
    """Secret files belong to root; with fsGroup their group is the pod's fsGroup, which the
    process (runAsUser, not root) is a member of."""
    if mode & 0o004:
        return True
    return bool(mode & 0o040) and pod["securityContext"].get("fsGroup") is not None


@pytest.mark.parametrize("kustomization", ("overlays/dev", "kafka/cluster"))
def test_the_cluster_admits_only_tls_scram_clients_and_enforces_acls(kustomization: str) -> None:
    kafka = _kafka(objects(kustomization))["spec"]["kafka"]
    for listener in kafka["listeners"]:
        assert listener["tls"] is True, listener["name"]
        assert listener.get("authentication", {}).get("type") == "scram-sha-512", listener["name"]
        assert listener["port"] == TLS_SCRAM_PORT
    assert kafka["authorization"]["type"] == "simple"
    # A super user bypasses the ACLs: ANONYMOUS (any unauthenticated client) above all.
    assert not kafka["authorization"].get("superUsers"), kafka["authorization"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_clients_are_exactly_the_labelled_pods(overlay: str) -> None:
    """The label opens the NetworkPolicy egress to the brokers and the listener's own policy:
    a Kafka client without it cannot connect, a pod with it but no Kafka use should not."""
    for workload in _workloads(objects(overlay)):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert (labels.get(CLIENT_LABEL) == "true") == _is_kafka_client(workload), (
            workload["metadata"]["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kafka_client_logs_in_as_its_own_kafka_user(overlay: str) -> None:
    docs = objects(overlay)
    cluster = _kafka(docs)["metadata"]["name"]
    users = {u["metadata"]["name"]: u for u in of_kind(docs, "KafkaUser")}
    seen: dict[str, set[str]] = {}
    clients = _clients(docs)
    assert len(clients) >= 8, [w["metadata"]["name"] for w in clients]
    for workload in clients:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = _environment(docs, container)

        host, port = env["SMSFLOW_KAFKA_BOOTSTRAP"].split(",")[0].rsplit(":", 1)
        assert int(port) == TLS_SCRAM_PORT, f"{name}: not the TLS + SCRAM listener"
        assert host.split(".")[0] == f"{cluster}-kafka-bootstrap", name
        assert env["SMSFLOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["SMSFLOW_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name

        user = env.get("SMSFLOW_KAFKA_SASL_USERNAME", "")
        assert user in users, f"{name} logs in as {user!r}, which is no KafkaUser of {overlay}"
        assert users[user]["spec"]["authentication"]["type"] == "scram-sha-512"
        assert users[user]["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        seen.setdefault(user, set()).add(name)
        programs = {w["spec"]["template"]["spec"]["containers"][0]["args"][0]
                    for w in clients if w["metadata"]["name"] in seen[user]}
        assert len(seen[user]) == 1 or (seen[user] <= SHARED_USERS.get(user, set())
                                        and len(programs) == 1), (
            f"{sorted(seen[user])} share the KafkaUser {user}")

        password = env["SMSFLOW_KAFKA_SASL_PASSWORD"]
        assert password.startswith("file:"), f"{name}: the password must be a mounted file"
        secret, key, mode, read_only = secret_behind(pod, container, password[len("file:"):])
        assert (secret, key) == (user, "password"), f"{name}: password from {secret}/{key}"
        assert read_only, name
        assert _readable_by_the_process(pod, mode), f"{name}: mode {mode:o} hides the password"
        assert not mode & 0o004, f"{name}: the password file is world-readable"

        secret, key, mode, read_only = secret_behind(pod, container,
                                                     env["SMSFLOW_KAFKA_SSL_CA_FILE"])
        assert (secret, key) == (f"{cluster}-cluster-ca-cert", "ca.crt"), name
        assert read_only and _readable_by_the_process(pod, mode), name
    for user, workloads in SHARED_USERS.items():
        assert seen.get(user) == workloads, f"{user} is for exactly {sorted(workloads)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_clients_settings_pass_the_processes_own_validation(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a process does at start with its environment: Settings() refuses an incomplete
    combination (SASL without user or password, a CA file without TLS)."""
    docs = objects(overlay)
    for workload in _clients(docs):
        env = _environment(docs, workload["spec"]["template"]["spec"]["containers"][0])
        with monkeypatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("SMSFLOW_")]:
                patch.delenv(key)
            for key, value in env.items():
                patch.setenv(key, value)
            settings = Settings()
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_username == env["SMSFLOW_KAFKA_SASL_USERNAME"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_logs_in_as_its_kafka_user(overlay: str) -> None:
    docs = objects(overlay)
    cluster = _kafka(docs)["metadata"]["name"]
    users = {u["metadata"]["name"] for u in of_kind(docs, "KafkaUser")}
    configmaps = {c["metadata"]["name"]: c["data"] for c in of_kind(docs, "ConfigMap")}
    auths = {a["metadata"]["name"]: a["spec"] for a in of_kind(docs, "TriggerAuthentication")}
    for scaled in of_kind(docs, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            where = scaled["metadata"]["name"]
            assert trigger["metadata"]["bootstrapServers"].endswith(f":{TLS_SCRAM_PORT}"), where
            auth = auths[trigger["authenticationRef"]["name"]]
            params = {ref["parameter"]: configmaps[ref["name"]][ref["key"]]
                      for ref in auth.get("configMapTargetRef", [])}
            secrets = {ref["parameter"]: (ref["name"], ref["key"])
                       for ref in auth.get("secretTargetRef", [])}
            assert params["sasl"] == "scram_sha512" and params["tls"] == "enable", where
            assert params["username"] in users, where
            assert secrets["password"] == (params["username"], "password"), where
            assert secrets["ca"] == (f"{cluster}-cluster-ca-cert", "ca.crt"), where


def test_dev_users_and_cluster_live_where_the_pods_can_mount_their_secrets() -> None:
    """The User Operator writes a user's Secret in the KafkaUser's namespace, Strimzi the CA's
    in the Kafka's; a pod mounts Secrets of its own namespace only."""
    docs = objects("overlays/dev")
    namespaces = {w["metadata"]["namespace"] for w in _clients(docs)}
    assert len(namespaces) == 1
    for kind in ("Kafka", "KafkaUser", "TriggerAuthentication"):
        for resource in of_kind(docs, kind):
            assert resource["metadata"]["namespace"] in namespaces, resource["metadata"]["name"]


def _secrets_referenced(docs: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for workload in _workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            names |= {s["secret"]["name"] for s in volume.get("projected", {}).get("sources", [])
                      if "secret" in s}
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
        for container in pod["containers"]:
            names |= {s["secretRef"]["name"] for s in container.get("envFrom", [])
                      if "secretRef" in s}
    for auth in of_kind(docs, "TriggerAuthentication"):
        names |= {ref["name"] for ref in auth["spec"].get("secretTargetRef", [])}
    return names


def test_the_readme_lists_every_secret_prod_needs_in_the_processes_namespace() -> None:
    """prod creates no Secret and its KafkaUsers live in the cluster's namespace: every Secret
    the processes and KEDA read must be put into theirs out of band, so the deploy steps must
    name each one, and the copy step each one Strimzi writes."""
    readme = (K8S / "README.md").read_text()
    section = readme.split("### Secrets", 1)[1].split("\n## ", 1)[0]
    listed = {name for cell in re.findall(r"^\| ([^|]+) \|", section, flags=re.MULTILINE)
              for name in re.findall(r"`([a-z0-9-]+)`", cell)}
    docs = objects("overlays/prod")
    needed = _secrets_referenced(docs)
    assert needed - listed == set(), "k8s/README.md, Secrets, does not name these"
    copy_loop = re.search(r"for secret in ([^;]+);", readme)
    assert copy_loop is not None, "k8s/README.md: the step that copies the Kafka Secrets"
    copied = set(copy_loop.group(1).replace("\\", " ").split())
    strimzi_written = {u["metadata"]["name"] for u in of_kind(docs, "KafkaUser")} | {
        f"{_kafka(docs)['metadata']['name']}-cluster-ca-cert"}
    assert needed & strimzi_written <= copied


def test_no_other_secret_takes_the_name_of_a_kafka_users_secret() -> None:
    """The User Operator owns the Secret named like each KafkaUser: a Secret of ours with that
    name (the API's pepper was `smsflow-api`) would be overwritten by it, or overwrite it."""
    docs = objects("overlays/prod")
    users = {u["metadata"]["name"] for u in of_kind(docs, "KafkaUser")}
    for workload in _workloads(docs):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] not in users, workload["metadata"]["name"]
