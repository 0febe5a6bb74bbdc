"""Which committed positions the kafka exporter counts as lag (connectors/kafka_exporter)."""

from __future__ import annotations

import pytest
from confluent_kafka import ConsumerGroupState, TopicPartition
from confluent_kafka.admin import MemberAssignment, MemberDescription

from connectors.kafka_exporter.exporter import counted_positions

#: A routing group after a switch to worker roles: its old sms.sent positions stay behind.
COMMITTED = {("sms.submitted", 0): 10, ("sms.routed", 0): 20, ("sms.sent", 0): 5}


def _member(*topics: str) -> MemberDescription:
    return MemberDescription(f"member-{'-'.join(topics)}", "client", "host",
                             MemberAssignment([TopicPartition(t, 0) for t in topics]))


def test_a_stable_group_counts_only_the_topics_its_members_read() -> None:
    members = [_member("sms.submitted"), _member("sms.routed")]
    assert counted_positions(COMMITTED, members, ConsumerGroupState.STABLE) == {
        ("sms.submitted", 0): 10, ("sms.routed", 0): 20}


@pytest.mark.parametrize("state", [ConsumerGroupState.PREPARING_REBALANCING,
                                   ConsumerGroupState.COMPLETING_REBALANCING,
                                   ConsumerGroupState.UNKNOWN, None])
def test_a_rebalancing_group_counts_every_position(state: ConsumerGroupState | None) -> None:
    """Members hold no assignment for a moment: hiding every lag then would be worse."""
    members = [_member(), _member()]
    assert counted_positions(COMMITTED, members, state) == COMMITTED


def test_a_group_without_members_counts_every_position() -> None:
    assert counted_positions(COMMITTED, [], ConsumerGroupState.EMPTY) == COMMITTED


def test_a_stable_group_whose_members_show_no_assignment_counts_every_position() -> None:
    assert counted_positions(COMMITTED, [_member()], ConsumerGroupState.STABLE) == COMMITTED
