"""Each process's KafkaUser grants exactly the topics its code names (smsflow/topics.py
constants imported by its modules), plus its consumer groups: no process can touch a topic it
does not use, and none is denied one it does."""

from __future__ import annotations

import re
from typing import Any

import pytest

from connectors.sender.bind_slots import SLOT_TOPIC_PREFIX
from smsflow import topics
from tests.k8s.tooling import ROOT, named, objects

#: Process -> the source folders of its code.
PROCESS_SOURCES = {
    "smsflow-api": ("api",),
    "smsflow-worker": ("pipeline",),
    "smsflow-sender": ("connectors/sender",),
    "smsflow-webhooks": ("connectors/webhooks",),
    "smsflow-config": ("smsflow/config",),
}

#: ``from smsflow.topics import A, B`` or the parenthesised form over several lines.
_IMPORT = re.compile(r"from smsflow\.topics import (?:\(([^)]*)\)|([^\n(]+))")
_TOPIC_CONSTANTS = {name: value for name, value in vars(topics).items()
                    if isinstance(value, str) and value in {s.name for s in topics.TOPICS}}


def topics_named_by(folders: tuple[str, ...]) -> set[str]:
    named_topics: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for match in _IMPORT.finditer(path.read_text()):
                for name in re.split(r"[,\s]+", match.group(1) or match.group(2)):
                    if name in _TOPIC_CONSTANTS:
                        named_topics.add(_TOPIC_CONSTANTS[name])
    return named_topics


def _acls(user: dict[str, Any], resource: str, pattern: str) -> dict[str, set[str]]:
    return {acl["resource"]["name"]: set(acl["operations"])
            for acl in user["spec"]["authorization"]["acls"]
            if acl["resource"]["type"] == resource
            and acl["resource"].get("patternType", "literal") == pattern}


def test_the_import_scan_finds_what_the_sender_uses() -> None:
    """Guards the scanner itself: the sender reads and writes these nine topics."""
    assert topics_named_by(("connectors/sender",)) == {
        topics.THROTTLED, topics.SENT, topics.DLR_RAW, topics.REJECTED, topics.ROUTED,
        topics.CONFIG, topics.SENDER_LEDGER, topics.INBOUND, topics.SMSC_BINDS,
    }


@pytest.mark.parametrize("process", sorted(PROCESS_SOURCES))
def test_topic_acls_are_exactly_the_topics_the_code_uses(process: str) -> None:
    user = named(objects("overlays/dev"), "KafkaUser", process)
    granted = _acls(user, "topic", "literal")
    assert set(granted) == topics_named_by(PROCESS_SOURCES[process])
    for topic, operations in granted.items():
        assert operations & {"Read", "Write"}, f"{process} can neither read nor write {topic}"


def test_every_granted_topic_is_in_the_topic_table() -> None:
    table = {spec.name for spec in topics.TOPICS}
    for user in [d for d in objects("overlays/dev") if d["kind"] == "KafkaUser"]:
        assert set(_acls(user, "topic", "literal")) <= table, user["metadata"]["name"]


def test_consumer_groups_follow_the_app_id() -> None:
    """The groups the code joins (<app id>, <app id>-deferred, -held, -sender, -webhooks) with the
    default SMSFLOW_APP_ID of the settings ConfigMap."""
    docs = objects("overlays/dev")
    app_id = next(c for c in docs if c["kind"] == "ConfigMap"
                  and c["metadata"]["name"].startswith("smsflow-settings"))["data"][
        "SMSFLOW_APP_ID"]
    expected = {
        "smsflow-worker": {app_id, f"{app_id}-deferred", f"{app_id}-held"},
        "smsflow-sender": {f"{app_id}-sender", f"{app_id}-bind-slots"},
        "smsflow-webhooks": {f"{app_id}-webhooks"},
    }
    for process, groups in expected.items():
        user = named(docs, "KafkaUser", process)
        assert set(_acls(user, "group", "literal")) == groups, process
    worker = named(docs, "KafkaUser", "smsflow-worker")
    assert "Create" in _acls(worker, "topic", "prefix")[f"{app_id}-"]  # faust's changelogs


def test_the_sender_may_create_and_grow_its_bind_slot_topics() -> None:
    """With bind leases (on in the base settings) the sender creates sms.bind-slots.<smsc>,
    grows it with the allowance, and relays records to sms.throttled."""
    docs = objects("overlays/dev")
    settings = next(c for c in docs if c["kind"] == "ConfigMap"
                    and c["metadata"]["name"].startswith("smsflow-settings"))["data"]
    assert settings["SMSFLOW_SENDER_BIND_LEASES"] == "true"
    sender = named(docs, "KafkaUser", "smsflow-sender")
    assert {"Create", "Alter", "Read"} <= _acls(sender, "topic", "prefix")[SLOT_TOPIC_PREFIX]
    assert "Write" in _acls(sender, "topic", "literal")[topics.THROTTLED]
    assert "Read" in _acls(sender, "topic", "literal")[topics.SMSC_BINDS]
