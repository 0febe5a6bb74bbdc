"""The manifests' KafkaUsers as ACL bindings on a local broker (what Strimzi's User Operator
does with ``authorization: simple``), and the broker's record of what it denied.

``k8s/kafka/users/kafkausers.yaml`` is parsed as written: each ACL's resource (topic, group,
transactionalId, cluster), name, patternType (literal, prefix), operations, host and type
(allow, deny) become one ``AclBinding`` per operation for principal ``User:<metadata.name>``,
exactly as the User Operator creates them. Names are not rewritten: the test that uses this
runs with the manifests' own topic and group names (empty topic prefix, app id ``smsflow``) on
a private broker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from tests.paths import REPO_ROOT

USERS_FILE = REPO_ROOT / "k8s" / "kafka" / "users" / "kafkausers.yaml"
CLUSTER_NAME = "kafka-cluster"  # the one name Kafka's cluster resource has

# librdkafka calls Kafka's CLUSTER resource type BROKER (both are code 4).
_RESOURCE_TYPES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
                   "transactionalId": ResourceType.TRANSACTIONAL_ID,
                   "cluster": ResourceType.BROKER}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
_PERMISSIONS = {"allow": AclPermissionType.ALLOW, "deny": AclPermissionType.DENY}


def _operation(name: str) -> AclOperation:
    """Strimzi's ``DescribeConfigs`` is librdkafka's ``DESCRIBE_CONFIGS``."""
    return AclOperation[re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()]


@dataclass(frozen=True)
class KafkaUserAcls:
    user: str
    bindings: tuple[AclBinding, ...]

    @property
    def principal(self) -> str:
        return f"User:{self.user}"


def load_users(path: Path = USERS_FILE) -> dict[str, KafkaUserAcls]:
    """Every KafkaUser of ``path`` with its ACLs as bindings, by user name."""
    users = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "KafkaUser":
            name = doc["metadata"]["name"]
            users[name] = KafkaUserAcls(name, tuple(_bindings(name, doc["spec"])))
    return users


def _bindings(user: str, spec: dict[str, Any]) -> list[AclBinding]:
    authorization = spec["authorization"]
    if authorization["type"] != "simple":
        raise ValueError(f"{user}: authorization {authorization['type']!r} is not simple")
    bindings = []
    for acl in authorization["acls"]:
        resource = acl["resource"]
        kind = resource["type"]
        name = CLUSTER_NAME if kind == "cluster" else resource["name"]
        pattern = _PATTERNS[resource.get("patternType", "literal")]
        for operation in acl["operations"]:
            bindings.append(AclBinding(
                _RESOURCE_TYPES[kind], name, pattern, f"User:{user}", acl.get("host", "*"),
                _operation(operation), _PERMISSIONS[acl.get("type", "allow")],
            ))
    return bindings


def create_acls(admin: Any, bindings: list[AclBinding], timeout_s: float = 30.0) -> None:
    for future in admin.create_acls(bindings).values():
        future.result(timeout=timeout_s)


def delete_acl(admin: Any, binding: AclBinding, timeout_s: float = 30.0) -> int:
    """Delete exactly ``binding``; returns how many bindings the broker removed."""
    exact = AclBindingFilter(binding.restype, binding.name, binding.resource_pattern_type,
                             binding.principal, binding.host, binding.operation,
                             binding.permission_type)
    removed = 0
    for future in admin.delete_acls([exact]).values():
        removed += len(future.result(timeout=timeout_s))
    return removed


_DENIED = re.compile(r"Principal = (User:\S+) is Denied operation = (\w+) from host = \S+ "
                     r"on resource = (\w+):(\w+):([^\s]+)")


def denials(server_log: Path) -> list[tuple[str, str, str, str, str]]:
    """``(principal, operation, resource type, pattern, name)`` of every denial the broker
    logged (kafka.authorizer.logger at INFO, as an ACL-enforcing dev broker sets it)."""
    text = server_log.read_text(errors="replace") if server_log.is_file() else ""
    return [match.groups() for match in _DENIED.finditer(text)]  # type: ignore[misc]
