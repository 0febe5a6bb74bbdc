"""Build and validate the manifests under ``k8s/`` with the pinned kustomize and kubeconform.

The tools are Go binaries installed by ``.ci/run`` (``go install``, cached in
``~/.cache/smsflow/bin``). A missing tool fails the test with the command that installs it:
manifest validation is part of ``make test``, so it must never be skipped silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from smsflow.settings import Settings, WorkerRole

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SCHEMAS = K8S / "schemas"

#: Every kustomization a person deploys: each must build and validate.
DEPLOYABLE = ("overlays/dev", "overlays/prod", "kafka/cluster")
OVERLAYS = ("overlays/dev", "overlays/prod")

#: The worker Deployments, by the role each runs (pipeline/roles.py): one program, split in two.
WORKER_ROLES: dict[str, WorkerRole] = {
    "smsflow-worker-routing": "routing",
    "smsflow-worker-delivery": "delivery",
}

#: Pinned versions; .ci/run installs exactly these.
TOOLS = {
    "kustomize": "sigs.k8s.io/kustomize/kustomize/v5@v5.7.1",
    "kubeconform": "github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0",
}
CACHE_BIN = Path.home() / ".cache" / "smsflow" / "bin"

#: kubeconform finds a kind's schema at the first of these that exists (vendored, offline).
SCHEMA_LOCATIONS = (
    str(SCHEMAS / "kubernetes" / "{{ .ResourceKind }}{{ .KindSuffix }}.json"),
    str(SCHEMAS / "crds" / "{{ .Group }}" / "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"),
)


def tool(name: str) -> str:
    """Path of ``name``: ``$SMSFLOW_<NAME>``, the CI cache, or ``PATH``; else the test fails."""
    override = os.environ.get(f"SMSFLOW_{name.upper()}")
    candidates = [override] if override else []
    candidates += [str(CACHE_BIN / name), shutil.which(name) or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        f"{name} is not installed: manifest validation needs it. Install it with\n"
        f"  GOBIN={CACHE_BIN} go install {TOOLS[name]}\n"
        f"(.ci/run does this), or point SMSFLOW_{name.upper()} at the binary.",
        pytrace=False,
    )


@cache
def built(kustomization: str) -> str:
    """``kustomize build k8s/<kustomization>``, as YAML text."""
    result = subprocess.run(
        [tool("kustomize"), "build", str(K8S / kustomization)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kustomize build k8s/{kustomization} failed:\n{result.stderr}", pytrace=False)
    return result.stdout


def objects(kustomization: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(built(kustomization)) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def kubeconform(manifest: str) -> subprocess.CompletedProcess[str]:
    """Validate a YAML stream strictly (unknown fields are errors; so is a kind without a
    vendored schema)."""
    args = [tool("kubeconform"), "-strict", "-summary", "-output", "text"]
    for location in SCHEMA_LOCATIONS:
        args += ["-schema-location", location]
    return subprocess.run([*args, "-"], input=manifest, capture_output=True, text=True,
                          timeout=120, check=False)


def settings_map(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The data of the rendered ``smsflow-settings`` ConfigMap (its name carries a hash)."""
    data: dict[str, str] = next(
        c for c in of_kind(docs, "ConfigMap")
        if c["metadata"]["name"].startswith("smsflow-settings"))["data"]
    return data


@dataclass(frozen=True)
class RoleReads:
    """What a worker of one role consumes in faust's group, as its code builds it."""

    group: str
    topics: frozenset[str]


@cache
def role_reads(role: WorkerRole, app_id: str, topic_prefix: str = "") -> RoleReads:
    """The consumer group and input topics of a worker of ``role``: the app ``smsflow worker``
    builds (pipeline.app.create_app), never started, so no broker is contacted."""
    from faust.types import TopicT  # imported here: faust's import is slow

    from pipeline.app import create_app

    with tempfile.TemporaryDirectory() as home:
        worker = create_app(Settings(home=Path(home), kafka_bootstrap="127.0.0.1:1",
                                     app_id=app_id, topic_prefix=topic_prefix,
                                     worker_role=role))
        topics: set[str] = set()
        for agent in worker.app.agents.values():
            assert isinstance(agent.channel, TopicT), agent.name
            topics |= set(agent.channel.topics)
        return RoleReads(worker.group_id, frozenset(topics))
