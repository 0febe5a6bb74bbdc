"""A message on its way through the sender: its record, its plan and the parts' outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.models import RoutedMessage, SubmitStatus
from smsflow.domain.encoding import SegmentPlan

__all__ = ["SubmitJob"]


@dataclass
class SubmitJob:
    """One Kafka record (one message) on its way to the SMSC."""

    routed: RoutedMessage
    partition: int
    offset: int
    epoch: int
    plan: SegmentPlan
    attempts: int = 0
    outcomes: dict[int, SubmitStatus] = field(default_factory=dict)  # part seq → outcome
    unacked: int = 0  # outcomes produced but not yet acknowledged by Kafka
    skipped: int = 0  # parts the ledger says were submitted already (no outcome from us)
    in_doubt: frozenset[int] = frozenset()  # part seqs resubmitted without knowing
    #: Failover found no route left (counted and logged once; asked again every bind wait).
    routes_exhausted: bool = False

    @property
    def settled(self) -> bool:
        return self.unacked == 0 and len(self.outcomes) + self.skipped == self.routed.parts

    @property
    def key(self) -> str:
        return self.routed.request.message_id
