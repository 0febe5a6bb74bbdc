"""Worker roles: which stages a worker process runs, and its consumer group.

``all`` runs every agent in one process (one consumer group, the app id). ``routing`` runs
sms.submitted → sms.throttled (route, quarantine, opt-outs, off-peak parking, throttle) in the
app id's group; ``delivery`` runs sms.sent and receipts → sms.dlr (correlation, reports, route
tracking) in the group ``<app_id>-delivery``. The two halves share nothing in memory: route
health reaches the routers through ``sms.route-health``, submit outcomes reach the throttle's
AIMD through ``sms.sent`` (pipeline/submit_feedback.py), so each scales by its own group.

A role's tables are the ones a role-``all`` worker keeps, changelogs included
(:class:`SharedChangelogTable`), and :func:`hand_over` gives a new delivery group the
positions the app id's group had reached on the delivery topics: moving a running platform
from ``all`` to the split loses no pending delivery and repeats no report, provided the
``all`` workers are stopped first (refused otherwise, both ways: two groups processing the
same receipts would report twice).
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from smsflow.kafka_clients import client_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings, WorkerRole
from smsflow.topics import (
    DLR_PARTS,
    DLR_PARTS_TIMERS,
    DLR_RAW,
    DLR_TIMERS,
    SENT,
    TRACKING_DELTAS,
    topic_name,
)

__all__ = [
    "DELIVERY_GROUP_SUFFIX",
    "DELIVERY_TOPICS",
    "RoleConflict",
    "SharedChangelogTable",
    "WorkerRole",
    "hand_over",
    "runs_delivery",
    "runs_routing",
]

log = logging.getLogger(__name__)

DELIVERY_GROUP_SUFFIX = "-delivery"

#: The topics the delivery stages consume in faust's group (their positions are what
#: :func:`hand_over` copies). The tracking feed has its own group in every role.
DELIVERY_TOPICS = (SENT, DLR_RAW, DLR_TIMERS, DLR_PARTS, DLR_PARTS_TIMERS, TRACKING_DELTAS)


class RoleConflict(RuntimeError):
    """The worker must not start yet: workers of the other shape consume the delivery topics
    (both would report every message), or members of its own group keep Kafka from moving the
    group's positions to where the other shape had reached."""


def runs_routing(role: WorkerRole) -> bool:
    return role in ("all", "routing")


def runs_delivery(role: WorkerRole) -> bool:
    return role in ("all", "delivery")


class SharedChangelogTable(faust.Table[Any, Any]):
    """A table whose changelog is named after the platform's app id, whichever role's group
    keeps it: ``<app_id>-dlr-pending-changelog`` under ``all`` and under ``delivery`` alike, so
    a split worker restores what an ``all`` worker wrote (faust names it after its own id)."""

    def _changelog_topic_name(self) -> str:
        app_id: str = self.app.conf.id
        return f"{app_id.removesuffix(DELIVERY_GROUP_SUFFIX)}-{self.name}-changelog"


def _consuming_delivery_topics(admin: AdminClient, group: str, topics: set[str]) -> list[str]:
    """Members of ``group`` assigned a partition of ``topics`` (by member id)."""
    description = admin.describe_consumer_groups([group])[group].result(10)
    return [member.member_id for member in description.members
            if member.assignment is not None
            and any(tp.topic in topics for tp in member.assignment.topic_partitions)]


def _committed(admin: AdminClient, group: str, topics: set[str]) -> dict[tuple[str, int], int]:
    request = [ConsumerGroupTopicPartitions(group)]
    listed = admin.list_consumer_group_offsets(request)[group].result(10)
    return {(tp.topic, tp.partition): tp.offset for tp in listed.topic_partitions or []
            if tp.topic in topics and tp.offset >= 0 and tp.error is None}


def _ahead(admin: AdminClient, mine: str, other: str, topics: set[str]) -> list[TopicPartition]:
    """The delivery partitions where ``other`` has committed further than ``mine``."""
    ours = _committed(admin, mine, topics)
    return [TopicPartition(topic, partition, offset)
            for (topic, partition), offset in _committed(admin, other, topics).items()
            if offset > ours.get((topic, partition), -1)]


def hand_over(settings: Settings) -> int:
    """Before a worker of ``settings.worker_role`` joins its group: refuse while workers of
    the other shape consume the delivery topics, then take the other group's position on every
    delivery partition where it is ahead of this role's group (a switch between ``all`` and
    the split; in steady operation nothing is ahead). Returns how many positions were taken."""
    if settings.worker_role == "routing":
        return 0  # the app id's group, as under ``all``: its positions are its own
    admin = AdminClient(client_config(kafka_connection(settings)))
    topics = {topic_name(settings, topic) for topic in DELIVERY_TOPICS}
    base, delivery = settings.app_id, f"{settings.app_id}{DELIVERY_GROUP_SUFFIX}"
    mine, other = (delivery, base) if settings.worker_role == "delivery" else (base, delivery)
    members = _consuming_delivery_topics(admin, other, topics)
    if members:
        shape = "all" if other == base else "delivery"
        raise RoleConflict(
            f"{len(members)} worker(s) of role {shape} (group {other}) consume the delivery "
            f"topics; stop them before starting a worker of role {settings.worker_role} "
            f"(docs/operations.md#worker-roles): both would report every message")
    ahead = _ahead(admin, mine, other, topics)
    if not ahead:
        return 0
    failed: list[object]
    try:
        result = admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(mine, ahead)])[mine].result(10)
        failed = [tp for tp in result.topic_partitions or [] if tp.error is not None]
    except KafkaException as exc:  # e.g. the group is not empty
        failed = [exc]
    if failed and _ahead(admin, mine, other, topics):  # not a twin that copied them first
        raise RoleConflict(
            f"cannot move group {mine} to where {other} had reached ({failed}); Kafka moves "
            f"only an empty group's positions: stop its other members first")
    log.info("group %s starts where %s had reached on %d delivery partitions",
             mine, other, len(ahead))
    return len(ahead)
