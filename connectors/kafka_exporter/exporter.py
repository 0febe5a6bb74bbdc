"""``smsflow kafka-exporter``: consumer lag (records and seconds), group members and broker
availability, read from Kafka when Prometheus scrapes.

Why a process of its own: lag and group membership are facts about a consumer group, not about
one member; a worker or sender cannot report "nobody consumes my group" once it is dead, and
"the broker is down" must come from something that is not stuck waiting on that broker. The
exporter holds no state: every scrape asks the broker (admin API) for the groups' members and
committed offsets and the partitions' high watermarks, then fetches the one record at each
lagging partition's committed offset to read its timestamp (``lag.partition_lag``).

Groups are named explicitly (default: the groups of this deployment's ``SMSFLOW_APP_ID``), so
the label sets stay bounded and a group that has no members is seen as such rather than
missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, MemberDescription, OffsetSpec
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connectors.kafka_exporter.lag import PartitionLag, partition_lag
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget

__all__ = ["GroupLag", "KafkaLagCollector", "default_groups"]

log = logging.getLogger(__name__)


def default_groups(app_id: str) -> list[str]:
    """The consumer groups smsflow's processes use (docs/architecture.md)."""
    # <app>-tracking: the worker's tracking feed (pipeline/window_feed.py), outside faust's
    # group since 06b8e93; its lag is how a stalled feed (stale route health) shows.
    # <app>-delivery: workers of role delivery (pipeline/roles.py), when the workers are split.
    return [app_id, f"{app_id}-delivery", f"{app_id}-sender", f"{app_id}-webhooks",
            f"{app_id}-deferred", f"{app_id}-tracking"]


def counted_positions(
    committed: dict[tuple[str, int], int], members: Sequence[MemberDescription],
    state: ConsumerGroupState | None,
) -> dict[tuple[str, int], int]:
    """The committed positions whose lag counts.

    A position on a topic no member reads is history, not lag: the app id's group keeps the
    delivery topics' old positions after a switch to worker roles, until Kafka expires them.
    That is judged only in a stable group: while it rebalances, members hold no assignment
    for a moment, and every position counts rather than none. With no member at all, every
    position counts too: the group is down and its topics fill.
    """
    if not members or state is not ConsumerGroupState.STABLE:
        return committed
    read = {tp.topic for member in members if member.assignment is not None
            for tp in member.assignment.topic_partitions}
    if not read:
        return committed
    return {tp: offset for tp, offset in committed.items() if tp[0] in read}


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: str
    members: int
    partitions: dict[tuple[str, int], PartitionLag]


class KafkaLagCollector(Collector):
    def __init__(
        self, bootstrap: KafkaTarget, groups: Sequence[str], timeout_s: float = 5.0
    ) -> None:
        self._groups = list(groups)
        self._timeout_s = timeout_s
        self._bootstrap = bootstrap
        self._admin = AdminClient(client_config(bootstrap))

    # ------------------------------------------------------------------ reading Kafka

    def brokers(self) -> int:
        """Brokers in the cluster metadata; raises KafkaException when none answers."""
        return len(self._admin.list_topics(timeout=self._timeout_s).brokers)

    def read(self, now_ms: int | None = None) -> list[GroupLag]:
        descriptions = self._admin.describe_consumer_groups(
            self._groups, request_timeout=self._timeout_s)
        result = []
        # One listing per group (the admin API takes one group a call): all asked at once, so
        # a scrape costs one round trip for them, not one per group.
        listings = {group: self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=self._timeout_s)[group]
            for group in self._groups}
        for group in self._groups:
            description = descriptions[group].result()
            members = description.members
            committed = _committed(listings[group].result())
            if not members and not committed:
                continue  # never used here (e.g. the delivery group of unsplit workers)
            committed = counted_positions(committed, members, description.state)
            highs = self._high_watermarks(list(committed))
            heads = self._head_timestamps({tp: offset for tp, offset in committed.items()
                                           if highs.get(tp, 0) > offset})
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            result.append(GroupLag(group, len(members), {
                tp: partition_lag(committed=offset, high=highs.get(tp, offset),
                                  head_timestamp_ms=heads.get(tp), now_ms=now)
                for tp, offset in sorted(committed.items())
            }))
        return result

    def _high_watermarks(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        if not partitions:
            return {}
        futures = self._admin.list_offsets(
            {TopicPartition(topic, partition): OffsetSpec.latest()  # type: ignore[no-untyped-call]
             for topic, partition in partitions},
            request_timeout=self._timeout_s)
        return {(tp.topic, tp.partition): future.result().offset
                for tp, future in futures.items()}

    def _head_timestamps(self, heads: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """Timestamp of the first record at or after each offset (one fetch per partition)."""
        if not heads:
            return {}
        consumer = Consumer({
            **client_config(self._bootstrap), "group.id": "smsflow-kafka-exporter",
            "enable.auto.commit": False, "enable.partition.eof": False,
            "fetch.max.bytes": 1_048_576, "max.partition.fetch.bytes": 65_536,
        })
        found: dict[tuple[str, int], int] = {}
        try:
            consumer.assign([TopicPartition(topic, partition, offset)
                             for (topic, partition), offset in heads.items()])
            deadline = time.monotonic() + self._timeout_s
            while len(found) < len(heads) and time.monotonic() < deadline:
                for message in consumer.consume(len(heads), 0.2):
                    if message.error() is not None:
                        continue
                    key = (message.topic() or "", message.partition() or 0)
                    _kind, timestamp = message.timestamp()
                    if key in heads and key not in found and timestamp > 0:
                        found[key] = timestamp
                        consumer.pause([TopicPartition(*key)])
        finally:
            consumer.close()
        return found

    # ------------------------------------------------------------------ exposition

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        up = GaugeMetricFamily("smsflow_kafka_up",
                               "1 when the exporter could read the cluster, 0 otherwise.")
        try:
            brokers = self.brokers()
            groups = self.read()
        except KafkaException as exc:
            log.warning("kafka-exporter: cannot read the cluster: %s", exc)
            up.add_metric([], 0.0)
            yield up
            yield _duration(started)
            return
        up.add_metric([], 1.0)
        yield up
        yield GaugeMetricFamily("smsflow_kafka_brokers", "Brokers in the cluster metadata.",
                                value=brokers)
        members = GaugeMetricFamily("smsflow_kafka_consumer_group_members",
                                    "Members of the consumer group now.", labels=["group"])
        labels = ["group", "topic", "partition"]
        records = GaugeMetricFamily("smsflow_kafka_consumer_lag_records",
                                    "High watermark minus the group's committed offset.",
                                    labels=labels)
        seconds = GaugeMetricFamily(
            "smsflow_kafka_consumer_lag_seconds",
            "Age of the oldest record the group has not consumed (0 when caught up).",
            labels=labels)
        for group in groups:
            members.add_metric([group.group], group.members)
            for (topic, partition), lag in group.partitions.items():
                names = [group.group, topic, str(partition)]
                records.add_metric(names, lag.records)
                if lag.seconds is not None:
                    seconds.add_metric(names, lag.seconds)
        yield from (members, records, seconds)
        yield _duration(started)


def _duration(started: float) -> Metric:
    return GaugeMetricFamily("smsflow_kafka_exporter_scrape_duration_seconds",
                             "Time this scrape spent reading Kafka.",
                             value=time.monotonic() - started)


def _committed(listing: ConsumerGroupTopicPartitions) -> dict[tuple[str, int], int]:
    return {(tp.topic, tp.partition): tp.offset for tp in listing.topic_partitions or []
            if tp.offset >= 0 and tp.error is None}
