"""The throttle's AIMD feedback takes a ``sms.sent`` batch outcome by outcome
(schemas/batches.py), from each outcome's own summary header, or from its value when the
headers do not pair with the values (no broker: records are handed to ``on_batch``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.submit_feedback import SubmitFeedback
from schemas.batches import pack_sent
from schemas.models import SubmitOutcome, SubmitStatus
from schemas.summaries import sent_summary_header

TOPIC = "unit.sms.sent"


@dataclass
class Stage:
    """What the feedback feeds: lanes by route, and the samples observed."""

    name: str = "throttle"
    observed: list[tuple[str, Any]] = field(default_factory=list)

    def has_lane(self, route_id: str) -> bool:
        return route_id != "foreign"

    def observe(self, route_id: str, sample: Any) -> None:
        self.observed.append((route_id, sample))


@dataclass
class Record:
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _outcome(n: int, route: str, status: int = 0) -> SubmitOutcome:
    now = datetime(2026, 12, 8, tzinfo=UTC)
    accepted = status == 0
    return SubmitOutcome(
        message_id=f"m{n}", tenant_id="acme", client_ref=None, route_id=route, smsc_id="s",
        operator_id="gb-ee", country="GB", destination="+447700900123", part_index=0,
        part_count=1, outcome=SubmitStatus.ACCEPTED if accepted else SubmitStatus.FAILED,
        smsc_message_id=f"id{n}" if accepted else None, command_status=status,
        status_name="x", attempts=1, latency_ms=4.0 + n, reason=None, submitted_at=now,
        sent_at=now, expires_at=now,
    )


def _batch(outcomes: list[SubmitOutcome], *, summaries: bool) -> Record:
    headers = [sent_summary_header(o.route_id, o.operator_id, o.tenant_id,
                                   o.outcome is SubmitStatus.ACCEPTED, o.command_status,
                                   o.latency_ms, o.attempts) for o in outcomes] if summaries else []
    return Record(pack_sent(o.to_avro(TOPIC) for o in outcomes), headers)


def _fold(records: list[Record]) -> tuple[SubmitFeedback, Stage]:
    stage = Stage()
    feedback = SubmitFeedback("127.0.0.1:1", TOPIC, stage)  # type: ignore[arg-type]
    asyncio.run(feedback.on_batch(None, {"tp": records}))
    return feedback, stage


def test_every_outcome_of_a_batch_is_a_sample_with_or_without_summaries() -> None:
    outcomes = [_outcome(1, "uk"), _outcome(2, "foreign"), _outcome(3, "uk", status=0x58)]
    for summaries in (True, False):
        feedback, stage = _fold([_batch(outcomes, summaries=summaries)])
        assert [route for route, _ in stage.observed] == ["uk", "uk"]
        assert [sample.latency_s for _, sample in stage.observed] == [0.005, 0.007]
        assert (feedback.samples, feedback.foreign, feedback.unusable) == (2, 1, 0)


def test_a_batch_cut_short_is_unusable_and_the_next_record_still_counts() -> None:
    cut = _batch([_outcome(1, "uk")], summaries=True)
    cut.value = (cut.value or b"")[:-3]
    single = _outcome(2, "uk")
    feedback, stage = _fold([cut, Record(single.to_avro(TOPIC), [])])
    assert (feedback.samples, feedback.unusable) == (1, 1)
    assert [sample.latency_s for _, sample in stage.observed] == [0.006]
