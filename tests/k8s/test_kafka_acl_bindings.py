"""The KafkaUsers' ACLs as the broker bindings the enforced-ACL integration test creates
(tests/integration/kafka_acls.py): every declared operation becomes one binding, as written."""

from __future__ import annotations

import yaml
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from tests.integration.kafka_acls import USERS_FILE, load_users


def test_every_declared_operation_becomes_one_binding() -> None:
    docs = [d for d in yaml.safe_load_all(USERS_FILE.read_text()) if d]
    users = load_users()
    assert set(users) == {d["metadata"]["name"] for d in docs if d["kind"] == "KafkaUser"}
    for doc in docs:
        user = users[doc["metadata"]["name"]]
        declared = sum(len(acl["operations"]) for acl in doc["spec"]["authorization"]["acls"])
        assert len(user.bindings) == declared, user.user
        assert {b.principal for b in user.bindings} == {user.principal}


def test_names_patterns_and_operations_are_translated_faithfully() -> None:
    users = load_users()
    assert AclBinding(ResourceType.TOPIC, "sms.sent", ResourcePatternType.LITERAL,
                      "User:smsflow-sender", "*", AclOperation.WRITE,
                      AclPermissionType.ALLOW) in users["smsflow-sender"].bindings
    assert AclBinding(ResourceType.TOPIC, "smsflow-", ResourcePatternType.PREFIXED,
                      "User:smsflow-worker", "*", AclOperation.DESCRIBE_CONFIGS,
                      AclPermissionType.ALLOW) in users["smsflow-worker"].bindings
    assert AclBinding(ResourceType.GROUP, "smsflow-config-reader-", ResourcePatternType.PREFIXED,
                      "User:smsflow-api-status", "*", AclOperation.READ,
                      AclPermissionType.ALLOW) in users["smsflow-api-status"].bindings
