"""Every deployable kustomization builds, and every object it yields is valid against the
Kubernetes schema of its kind or the vendored CRD schema (Strimzi, KEDA, Prometheus operator)."""

from __future__ import annotations

import pytest

from tests.k8s.tooling import DEPLOYABLE, built, kubeconform


@pytest.mark.parametrize("kustomization", DEPLOYABLE)
def test_kustomization_builds_and_every_object_is_schema_valid(kustomization: str) -> None:
    result = kubeconform(built(kustomization))
    assert result.returncode == 0, (
        f"k8s/{kustomization} has invalid objects:\n{result.stdout}{result.stderr}"
    )
    assert "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout, result.stdout


def test_validation_rejects_an_unknown_field_and_a_kind_without_schema() -> None:
    """The validator is strict: a misspelt field or an unvendored kind is a failure."""
    misspelt = built("overlays/dev").replace(
        "terminationGracePeriodSeconds:", "terminationGracePeriodSecond:", 1
    )
    unknown = "apiVersion: example.com/v1\nkind: Nope\nmetadata: {name: x}\n"
    assert "additional properties" in kubeconform(misspelt).stdout
    result = kubeconform(unknown)
    assert result.returncode != 0
    assert "could not find schema for Nope" in result.stdout
