"""The committed KafkaTopic resources are the topic table (smsflow/topics.py), exactly."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from smsflow.topics import TOPICS
from smsflow.topics_k8s import MANIFEST_PATH, default_partitions, main, render
from tests.k8s.tooling import OVERLAYS, ROOT, objects, of_kind


def _committed() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((ROOT / MANIFEST_PATH).read_text()) if doc]


def test_committed_manifest_is_the_generator_output() -> None:
    assert (ROOT / MANIFEST_PATH).read_text() == render(), (
        "k8s/kafka/topics/kafkatopics.yaml is stale: run `smsflow topics k8s --write`"
    )


def test_every_topic_has_its_partitions_cleanup_and_retention() -> None:
    by_name = {doc["spec"]["topicName"]: doc for doc in _committed()}
    assert sorted(by_name) == sorted(spec.name for spec in TOPICS)
    for spec in TOPICS:
        topic = by_name[spec.name]["spec"]
        assert topic["partitions"] == (spec.partitions or default_partitions()), spec.name
        config = topic["config"]
        # A topic may set its own policy (sms.api-idempotency: compact,delete with a retention).
        policy = spec.extra.get("cleanup.policy", "compact" if spec.compacted else "delete")
        assert config["cleanup.policy"] == policy, spec.name
        if "delete" not in policy.split(","):
            assert "retention.ms" not in config, spec.name
        else:
            retention = spec.extra.get("retention.ms", str(spec.retention_ms))
            assert config["retention.ms"] == retention, spec.name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_deploys_every_topic_with_a_consistent_replication(overlay: str) -> None:
    topics = of_kind(objects(overlay), "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(s.name for s in TOPICS)
    for topic in topics:
        replicas = topic["spec"]["replicas"]
        min_isr = int(topic["spec"]["config"]["min.insync.replicas"])
        # acks=all producers need min ISR <= replicas; one spare replica where there are 3.
        assert min_isr == (1 if replicas == 1 else replicas - 1), topic["metadata"]["name"]


def test_check_mode_reports_a_stale_file(tmp_path: Any) -> None:
    stale = tmp_path / "kafkatopics.yaml"
    stale.write_text(render().replace("partitions: 4", "partitions: 3", 1))
    assert main(["--check", "--out", str(stale)]) == 1
    assert main(["--write", "--out", str(stale)]) == 0
    assert main(["--check", "--out", str(stale)]) == 0


def test_the_cli_command_checks_the_committed_file() -> None:
    from smsflow.cli import main as cli_main

    assert cli_main(["topics", "k8s", "--check", "--out", str(ROOT / MANIFEST_PATH)]) == 0
