"""Every Kafka topic smsflow uses, declared once, and ``smsflow topics apply``.

The table below is the single source of truth for names, keys, partitions and retention. Flow
topics that are joined (``sms.sent`` and ``sms.dlr.raw``) must have equal partition counts and
the same key, so that a receipt and its submit outcome land in the same partition of the DLR
agent; ``apply`` refuses to leave them mismatched.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from smsflow.domain.errors import PermanentError
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings, load_settings

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    value: str
    doc: str
    compacted: bool = False
    retention_ms: int = 7 * DAY_MS
    partitions: int | None = None  # None: the settings' default flow partition count
    extra: dict[str, str] = field(default_factory=dict)
    #: False for the workers' internal topics whose values are not Avro records (timer
    #: commands, window deltas): no schema-registry subject, not part of any contract.
    avro: bool = True

    def configs(self) -> dict[str, str]:
        configs = {"cleanup.policy": "compact" if self.compacted else "delete", **self.extra}
        if not self.compacted:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


SUBMITTED = "sms.submitted"
ROUTED = "sms.routed"
THROTTLED = "sms.throttled"
SENT = "sms.sent"
DLR_RAW = "sms.dlr.raw"
DLR_PARTS = "sms.dlr.parts"
DLR = "sms.dlr"
REJECTED = "sms.rejected"
ROUTE_HEALTH = "sms.route-health"
CONFIG = "sms.config"
DLR_TIMERS = "sms.dlr.timers"
DLR_PARTS_TIMERS = "sms.dlr.parts.timers"
TRACKING_DELTAS = "sms.tracking-deltas"
DEFERRED = "sms.deferred"
HELD = "sms.held"
API_KEYS = "sms.api-keys"
API_IDEMPOTENCY = "sms.api-idempotency"
SENDER_LEDGER = "sms.sender.ledger"
INBOUND = "sms.inbound"
SMSC_BINDS = "sms.smsc-binds"
AUDIT = "sms.audit"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(SUBMITTED, "tenant_id", "SubmitRequest", "Messages accepted from tenants."),
    TopicSpec(ROUTED, "route_id", "RoutedMessage", "Messages with a routing decision."),
    TopicSpec(THROTTLED, "route_id", "RoutedMessage", "Messages released by the rate limits."),
    TopicSpec(SENT, "smsc_id:smsc_message_id", "SubmitOutcome", "Submit outcome per part."),
    TopicSpec(DLR_RAW, "smsc_id:smsc_message_id", "ReceiptEvent", "Parsed SMSC receipts."),
    # The value names the contract (schema-registry subject) of each part in a batch.
    TopicSpec(DLR_PARTS, "partition of message_id", "PartOutcome",
              "Terminal state per part, in batches per partition (internal)."),
    TopicSpec(
        DLR, "tenant_id", "DeliveryReport", "One terminal report per message.",
        retention_ms=30 * DAY_MS,
    ),
    TopicSpec(
        REJECTED, "tenant_id", "Rejection", "Rejected and undecodable records (dead letters).",
        retention_ms=30 * DAY_MS,
    ),
    TopicSpec(
        AUDIT, "tenant_id", "AuditEvent",
        "Who quarantined or released a tenant, created or revoked its API keys: when and why.",
        retention_ms=365 * DAY_MS, partitions=1,
    ),
    TopicSpec(
        INBOUND, "tenant_id", "InboundMessage",
        "Mobile-originated messages from subscribers to tenants' numbers (incl. STOP/START); "
        "MO to no tenant's number is dead-lettered (MO_UNKNOWN_DESTINATION).",
        retention_ms=30 * DAY_MS,
    ),
    TopicSpec(
        ROUTE_HEALTH, "route_id", "RouteHealth", "Latest health score per route.",
        compacted=True,
    ),
    TopicSpec(
        SMSC_BINDS, "smsc_id/instance", "SmscBindStatus",
        "Binds each sender process holds per SMSC (heartbeat; tombstone at stop); the worker "
        "marks a route DOWN when no sender holds a bind to its SMSC.",
        compacted=True, partitions=1,
    ),
    TopicSpec(
        CONFIG, "kind/id", "ConfigRecord", "Tenants, operators, SMSCs and routes.",
        compacted=True, partitions=1,
    ),
    TopicSpec(
        DLR_TIMERS, "smsc_id:smsc_message_id", "(empty)",
        "Internal: 'look at this key now' commands from the correlator's timer to itself.",
        retention_ms=DAY_MS, avro=False,
    ),
    TopicSpec(
        DLR_PARTS_TIMERS, "message_id", "(empty)",
        "Internal: 'look at this key now' commands from the aggregator's timer to itself.",
        retention_ms=DAY_MS, avro=False,
    ),
    TopicSpec(
        TRACKING_DELTAS, "route:|operator:|tenant:<id>", "WindowState",
        "Internal: rolling-window deltas per key, merged into the tracking-windows table.",
        retention_ms=DAY_MS, avro=False,
    ),
    TopicSpec(
        DEFERRED, "route_id", "RoutedMessage",
        "Internal: Economy parked outside its off-peak windows, each with a smsflow-release-at "
        "header; sent back to sms.routed when the window opens.",
        retention_ms=7 * DAY_MS, avro=False,
    ),
    TopicSpec(
        HELD, "tenant_id", "SubmitRequest",
        "Internal: sms.submitted records of quarantined tenants, held until `smsflow tenants "
        "release`; then sent back to sms.submitted unchanged.",
        retention_ms=30 * DAY_MS, avro=False,
    ),
    TopicSpec(
        API_KEYS, "key_id", "ApiKeyRecord (JSON)",
        "Internal: API keys (HMAC of the secret, never the key), latest state per key id; "
        "read in full by every API process.",
        compacted=True, partitions=1, avro=False,
    ),
    TopicSpec(
        API_IDEMPOTENCY, "tenant_id/Idempotency-Key", "StoredAnswer (JSON)",
        "Internal: the first answer to each Idempotency-Key, replayed on retries; compacted and "
        "deleted after 2 days (answers are promised for 24 h).",
        compacted=True, avro=False,
        extra={"cleanup.policy": "compact,delete", "retention.ms": str(2 * DAY_MS)},
    ),
    TopicSpec(
        SENDER_LEDGER, "~sender:sequence (unique per record)", "LedgerBatch",
        "Internal: the sender's submit intents and outcomes per part (idempotency), in batches, "
        "written to the partition number of their parts' sms.throttled records.",
        compacted=True, avro=False,
        # Deleted after a day: a replay is minutes old. Compaction keeps the latest state of
        # the older per-part records; batch records have unique keys.
        extra={"cleanup.policy": "compact,delete", "retention.ms": str(DAY_MS)},
    ),
)

#: Topics whose values are Avro contracts (schema-registry subjects).
AVRO_TOPICS: tuple[TopicSpec, ...] = tuple(spec for spec in TOPICS if spec.avro)


#: Topics a single agent joins by key: their partition counts must be equal.
CO_PARTITIONED: tuple[tuple[str, str], ...] = (
    (SENT, DLR_RAW),
    (SENT, DLR_TIMERS),
    (DLR_PARTS, DLR_PARTS_TIMERS),
    (THROTTLED, SENDER_LEDGER),
)


class TopicLayoutError(PermanentError, RuntimeError):
    """Existing topics are laid out in a way the agents cannot work with."""


def topic_name(settings: Settings, name: str) -> str:
    return f"{settings.topic_prefix}{name}"


def _admin(settings: Settings) -> AdminClient:
    return AdminClient(client_config(kafka_connection(settings)))


def apply_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics, grow partitions and update configs. Returns a change log."""
    admin = _admin(settings)
    existing = admin.list_topics(timeout=timeout_s).topics
    changes: list[str] = []
    to_create: list[NewTopic] = []
    for spec in TOPICS:
        name = topic_name(settings, spec.name)
        partitions = spec.partitions or settings.partitions
        if name not in existing:
            to_create.append(
                NewTopic(name, partitions, settings.replication_factor, config=spec.configs())
            )
            changes.append(f"created {name} ({partitions} partitions)")
            continue
        current = len(existing[name].partitions)
        if current < partitions:
            _wait(admin.create_partitions([NewPartitions(name, partitions)]), timeout_s)
            changes.append(f"grew {name} from {current} to {partitions} partitions")
        resource = ConfigResource(ConfigResource.Type.TOPIC, name, set_config=spec.configs())
        _wait(admin.alter_configs([resource]), timeout_s)
    if to_create:
        _wait(admin.create_topics(to_create, operation_timeout=timeout_s), timeout_s)
        _wait_for_leaders(admin, [t.topic for t in to_create], timeout_s)
    _check_co_partitioning(admin, settings, timeout_s)
    return changes or ["all topics up to date"]


def _check_co_partitioning(admin: AdminClient, settings: Settings, timeout_s: float) -> None:
    topics = admin.list_topics(timeout=timeout_s).topics
    for first, second in CO_PARTITIONED:
        a, b = topic_name(settings, first), topic_name(settings, second)
        counts = (len(topics[a].partitions), len(topics[b].partitions))
        if counts[0] != counts[1]:
            raise TopicLayoutError(
                f"{a} has {counts[0]} partitions but {b} has {counts[1]}: receipts would not "
                "meet their submit outcomes. Grow the smaller one to match."
            )


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Return once every partition of ``names`` has a leader: a new topic is not usable before
    (clients get NOT_LEADER_FOR_PARTITION)."""
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.list_topics(timeout=timeout_s).topics
        missing = [
            name for name in names
            if name not in topics
            or not topics[name].partitions
            or any(p.leader < 0 for p in topics[name].partitions.values())
        ]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout_s}s: {missing}")
        time.sleep(0.1)


def _wait(futures: dict[Any, Any], timeout_s: float) -> None:
    for future in futures.values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def _cmd_apply(args: argparse.Namespace) -> int:
    for line in apply_topics(load_settings()):
        print(line)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    settings = load_settings()
    for spec in TOPICS:
        kind = "compacted" if spec.compacted else f"retention {spec.retention_ms // DAY_MS}d"
        partitions = spec.partitions or settings.partitions
        print(
            f"{topic_name(settings, spec.name):<22} key={spec.key:<26} value={spec.value:<15} "
            f"partitions={partitions} {kind}  {spec.doc}"
        )
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("topics", help="declare and create the Kafka topics")
    sub = parser.add_subparsers(dest="topics_command", required=True)
    sub.add_parser("apply", help="create or update every topic (idempotent)").set_defaults(
        func=_cmd_apply
    )
    sub.add_parser("list", help="print the topic table").set_defaults(func=_cmd_list)
    from smsflow import topics_k8s  # the Strimzi KafkaTopic manifests of this table

    topics_k8s.add_arguments(
        sub.add_parser("k8s", help="print (or --write, --check) the Strimzi KafkaTopic manifests")
    )
