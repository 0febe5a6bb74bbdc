"""Each process's KafkaUser grants exactly the topics its code names (smsflow/topics.py
constants imported by its modules), plus the consumer groups its code builds (read from the
source by tests/k8s/group_scan.py): no process can touch a topic or group it does not use, and
none is denied one it does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pytest

from api.runtime import ApiRuntime
from api.settings import ApiSettings
from connectors.kafka_exporter.exporter import default_groups
from connectors.sender.bind_slots import SLOT_TOPIC_PREFIX
from pipeline.roles import DELIVERY_GROUP_SUFFIX
from smsflow import topics
from smsflow.settings import Settings
from tests.k8s.group_scan import GroupName, group_usage, import_closure
from tests.k8s.tooling import named, objects

#: Process -> the source folders of its code.
PROCESS_SOURCES = {
    "smsflow-api": ("api",),  # the submit role: less PROCESS_EXCLUDES
    "smsflow-api-status": ("api",),  # the status role: all of it, and `smsflow tenants key`
    "smsflow-worker": ("pipeline",),
    "smsflow-sender": ("connectors/sender",),
    "smsflow-webhooks": ("connectors/webhooks",),
    "smsflow-config": ("smsflow/config",),
}
#: Process -> modules of its folders it never runs. The API's submit role builds no status or
#: inbound store (api/runtime.py, role "all" only; test_the_submit_role_keeps_no_store) and
#: `smsflow tenants key` runs in the status role's pods (k8s/README.md, Kafka users).
PROCESS_EXCLUDES = {
    "smsflow-api": ("api/status_feed.py", "api/inbound_feed.py", "api/tenants_cli.py"),
}
#: With the exporter, whose topics are a prefix grant (it reads whatever the groups read).
ALL_PROCESS_SOURCES = PROCESS_SOURCES | {"smsflow-kafka-exporter": ("connectors/kafka_exporter",)}

#: ``from smsflow.topics import A, B`` or the parenthesised form over several lines.
_IMPORT = re.compile(r"from smsflow\.topics import (?:\(([^)]*)\)|([^\n(]+))")
_TOPIC_CONSTANTS = {name: value for name, value in vars(topics).items()
                    if isinstance(value, str) and value in {s.name for s in topics.TOPICS}}


def topics_named_by(folders: tuple[str, ...], exclude: tuple[str, ...] = ()) -> set[str]:
    """The topic constants imported anywhere in the code the folders run (their modules and
    every project module those import, transitively; less ``exclude``)."""
    named_topics: set[str] = set()
    for path in import_closure(folders, exclude):
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
    """Guards the scanner itself: the sender reads and writes these ten topics."""
    assert topics_named_by(("connectors/sender",)) == {
        topics.THROTTLED, topics.SENT, topics.DLR_RAW, topics.REJECTED, topics.ROUTED,
        topics.CONFIG, topics.SENDER_LEDGER, topics.INBOUND, topics.SMSC_BINDS,
        topics.ROUTE_HEALTH,
    }


def test_the_submit_role_keeps_no_store(tmp_path: Path) -> None:
    """What PROCESS_EXCLUDES relies on: an API process of role submit builds neither store
    (so it never reads the stage topics), one of role all builds both."""
    settings = Settings(home=tmp_path)
    roles: tuple[tuple[Literal["submit", "all"], bool], ...] = (("submit", False), ("all", True))
    for role, stores in roles:
        runtime = ApiRuntime(settings, ApiSettings(role=role), b"pepper")
        assert (runtime.status is not None, runtime.inbound is not None) == (stores, stores)


def test_the_submit_role_names_only_its_topics() -> None:
    """Guards the exclusion: the submit role's code names the topics it follows and writes,
    no stage topic, no audit."""
    assert topics_named_by(("api",), PROCESS_EXCLUDES["smsflow-api"]) == {
        topics.SUBMITTED, topics.API_IDEMPOTENCY, topics.API_KEYS, topics.CONFIG}


@pytest.mark.parametrize("process", sorted(PROCESS_SOURCES))
def test_topic_acls_are_exactly_the_topics_the_code_uses(process: str) -> None:
    user = named(objects("overlays/dev"), "KafkaUser", process)
    granted = _acls(user, "topic", "literal")
    assert set(granted) == topics_named_by(PROCESS_SOURCES[process],
                                           PROCESS_EXCLUDES.get(process, ()))
    for topic, operations in granted.items():
        assert operations & {"Read", "Write"}, f"{process} can neither read nor write {topic}"


def test_every_granted_topic_is_in_the_topic_table() -> None:
    table = {spec.name for spec in topics.TOPICS}
    for user in [d for d in objects("overlays/dev") if d["kind"] == "KafkaUser"]:
        assert set(_acls(user, "topic", "literal")) <= table, user["metadata"]["name"]


def _app_id(docs: list[dict[str, Any]]) -> str:
    app_id: str = next(c for c in docs if c["kind"] == "ConfigMap"
                       and c["metadata"]["name"].startswith("smsflow-settings"))["data"][
        "SMSFLOW_APP_ID"]
    return app_id


def _granted(user: dict[str, Any], resource: str, name: GroupName) -> set[str]:
    """Operations the user's ACLs allow on every resource ``name`` stands for (a prefix name:
    on all of them), with the Describe that Read, Write, Create, Alter and Delete imply."""
    operations: set[str] = set()
    for acl in user["spec"]["authorization"]["acls"]:
        target = acl["resource"]
        if target["type"] != resource:
            continue
        if target.get("patternType", "literal") == "prefix":
            matches = name.text.startswith(target["name"])
        else:
            matches = not name.prefix and name.text == target["name"]
        if matches:
            operations |= set(acl["operations"])
    if operations & {"Read", "Write", "Create", "Alter", "Delete", "All"}:
        operations.add("Describe")
    return operations


def _needs(process: str, docs: list[dict[str, Any]]) -> dict[tuple[str, GroupName], set[str]]:
    """(resource type, name) -> operations, for every group the process's code joins or names
    (tests/k8s/group_scan.py), faust's own topics, and the groups the exporter watches."""
    app_id = _app_id(docs)
    usage = group_usage(ALL_PROCESS_SOURCES[process], app_id, PROCESS_EXCLUDES.get(process, ()))
    assert not usage.unresolved, f"{process}: cannot tell these group ids: {usage.unresolved}"
    needs = {("group", group): {"Read"} for group in usage.groups}
    for faust_app in usage.faust_app_ids:  # faust's group, and its changelogs etc. it creates
        needs[("group", faust_app)] = {"Read"}
        needs[("topic", GroupName(f"{faust_app.text}-", True))] = {
            "Create", "Read", "Write", "Describe"}
    if process == "smsflow-kafka-exporter":  # describes the groups, reads the topics' heads
        for group in default_groups(app_id):
            needs[("group", GroupName(group, False))] = {"Describe"}
    return needs


@pytest.mark.parametrize("process", sorted(ALL_PROCESS_SOURCES))
def test_acls_cover_every_group_the_code_uses(process: str) -> None:
    """Derived from the code, not listed twice: every consumer group id its modules build
    (and faust's group and internal topics for the worker) is granted."""
    docs = objects("overlays/dev")
    user = named(docs, "KafkaUser", process)
    needs = _needs(process, docs)
    assert needs, f"{process}: the scan found no group at all"
    for (resource, name), operations in needs.items():
        missing = operations - _granted(user, resource, name)
        assert not missing, f"{process} lacks {sorted(missing)} on {resource} {name}"


@pytest.mark.parametrize("process", sorted(ALL_PROCESS_SOURCES))
def test_no_group_acl_grants_what_the_code_does_not_use(process: str) -> None:
    docs = objects("overlays/dev")
    user = named(docs, "KafkaUser", process)
    needed = [name for resource, name in _needs(process, docs) if resource == "group"]
    for acl in user["spec"]["authorization"]["acls"]:
        target = acl["resource"]
        if target["type"] != "group":
            continue
        if target.get("patternType", "literal") == "prefix":
            used = any(n.text.startswith(target["name"]) for n in needed)
        else:
            used = GroupName(target["name"], False) in needed
        assert used, f"{process}: group ACL {target} matches no group its code uses"


def test_the_scan_finds_the_groups_built_in_each_way() -> None:
    """Guards the scanner: a "group.id" property with a uuid suffix, a positional group_id,
    an f-string expanded from its callers' literals, an `x or default` assignment, faust."""
    sender = group_usage(("connectors/sender",), "app")
    assert set(sender.groups) >= {GroupName("app-sender", False),
                                  GroupName("app-bind-slots", False),
                                  GroupName("app-bind-directory-", True),
                                  GroupName("smsflow-ledger-", True)}
    worker = group_usage(("pipeline",), "app")
    # The aggregator's read-back consumer (pipeline/reported_tail.py) takes the worker's group
    # id (one of faust's below) without joining it.
    assert set(worker.groups) == {GroupName("app-deferred", False), GroupName("app-held", False),
                                  GroupName("app-tracking", False), GroupName("app", False),
                                  GroupName("app-delivery", False)}
    # Under role delivery, faust's group is "<app id>-delivery" (pipeline/roles.py).
    assert worker.faust_app_ids == {GroupName("app", False), GroupName("app-delivery", False)}
    webhooks = group_usage(("connectors/webhooks",), "app")
    assert GroupName("app-webhooks", False) in webhooks.groups


def test_keda_may_describe_the_groups_and_topics_it_scales_on() -> None:
    """Every trigger of every ScaledObject (the routing workers' have one per topic): the
    group whose lag it reads (the worker roles' `smsflow` and `smsflow-delivery`, the
    senders') and its topic."""
    docs = objects("overlays/dev")
    keda = named(docs, "KafkaUser", "smsflow-keda")
    groups: set[str] = set()
    for scaled in [d for d in docs if d["kind"] == "ScaledObject"]:
        assert scaled["spec"]["triggers"], scaled["metadata"]["name"]
        for trigger in (t["metadata"] for t in scaled["spec"]["triggers"]):
            group = GroupName(trigger["consumerGroup"], False)
            groups.add(group.text)
            assert "Describe" in _granted(keda, "group", group), scaled["metadata"]["name"]
            # without a topic, the lag of every topic the group reads (all sms.*)
            topic = GroupName(trigger.get("topic", "sms."), "topic" not in trigger)
            assert "Describe" in _granted(keda, "topic", topic), scaled["metadata"]["name"]
    app_id = _app_id(docs)
    assert {app_id, app_id + DELIVERY_GROUP_SUFFIX, f"{app_id}-sender"} <= groups
    # and no group it does not scale on
    assert set(_acls(keda, "group", "literal")) == groups
    assert not _acls(keda, "group", "prefix")


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
