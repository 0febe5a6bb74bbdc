"""What happened to a message, folded from the pipeline's topics (pure; no I/O).

Theory of operation
-------------------
Each message's state is a value, :class:`MessageState`, built by :func:`step` from the records
the pipeline writes about it: ``sms.submitted`` (SUBMITTED), ``sms.routed`` (ROUTED, with the
route and part count), ``sms.sent`` (SENT, one outcome per part), ``sms.dlr`` (the terminal
report) and ``sms.rejected`` (REJECTED with the reason code). The records come from different
topics, so they may be read in any order: the state only moves forward (:data:`RANK`), and each
record fills in the fields it knows, whatever came first. The tenant comes from the first record
that names it; a status request from any other tenant sees nothing.

Usage per tenant and UTC day is counted from the same records: messages and parts submitted
(parts from the routing decision), and terminal outcomes.

>>> state = step(None, Event(message_id="m", tenant_id="t", stage=Stage.ROUTED, parts=2), 0.0)
>>> state = step(state, Event(message_id="m", tenant_id="t", stage=Stage.SUBMITTED), 1.0)
>>> state.stage, state.parts
(<Stage.ROUTED: 'ROUTED'>, 2)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final


class Stage(StrEnum):
    SUBMITTED = "SUBMITTED"
    ROUTED = "ROUTED"
    SENT = "SENT"
    DONE = "DONE"  # a terminal delivery report (status says which)
    REJECTED = "REJECTED"


#: The order stages are reached in; a record of an earlier stage never moves a message back.
RANK: Final[dict[Stage, int]] = {
    Stage.SUBMITTED: 0, Stage.ROUTED: 1, Stage.SENT: 2, Stage.DONE: 3, Stage.REJECTED: 3,
}


@dataclass(frozen=True, slots=True)
class Event:
    """One pipeline record about a message, reduced to what the status needs."""

    message_id: str
    tenant_id: str | None
    stage: Stage
    destination: str | None = None
    client_ref: str | None = None
    route_id: str | None = None
    parts: int | None = None
    part_index: int | None = None  # SENT: which part
    part_accepted: bool | None = None  # SENT: the SMSC accepted the part
    status: str | None = None  # DONE: DeliveryStatus; REJECTED: "REJECTED"
    reason_code: str | None = None
    reason: str | None = None
    error_code: int | None = None
    at: float | None = None  # when the stage happened (Unix seconds), if the record says


@dataclass(frozen=True, slots=True)
class MessageState:
    message_id: str
    tenant_id: str | None
    stage: Stage
    updated: float  # when this process last changed it (pruning)
    destination: str | None = None
    client_ref: str | None = None
    route_id: str | None = None
    parts: int | None = None
    parts_accepted: frozenset[int] = field(default_factory=frozenset)
    parts_failed: frozenset[int] = field(default_factory=frozenset)
    status: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    error_code: int | None = None
    submitted_at: float | None = None
    done_at: float | None = None


def step(state: MessageState | None, event: Event, now: float) -> MessageState:
    """The state after ``event``; ``now`` only stamps ``updated``."""
    if state is None:
        state = MessageState(event.message_id, event.tenant_id, event.stage, now)
    stage = event.stage if RANK[event.stage] > RANK[state.stage] else state.stage
    accepted, failed = state.parts_accepted, state.parts_failed
    if event.stage is Stage.SENT and event.part_index is not None:
        if event.part_accepted:
            accepted = accepted | {event.part_index}
        else:
            failed = failed | {event.part_index}
    terminal = event.stage in (Stage.DONE, Stage.REJECTED)
    return replace(
        state,
        tenant_id=state.tenant_id or event.tenant_id,
        stage=stage,
        updated=now,
        destination=state.destination or event.destination,
        client_ref=state.client_ref or event.client_ref,
        route_id=event.route_id or state.route_id,
        parts=state.parts or event.parts,
        parts_accepted=accepted,
        parts_failed=failed,
        status=event.status if terminal and stage is event.stage else state.status,
        reason_code=event.reason_code or state.reason_code,
        reason=event.reason or state.reason,
        error_code=event.error_code if event.error_code is not None else state.error_code,
        submitted_at=event.at if event.stage is Stage.SUBMITTED else state.submitted_at,
        done_at=event.at if terminal and stage is event.stage else state.done_at,
    )


def describe(state: MessageState) -> dict[str, object]:
    """The status answer (``GET /v1/messages/{id}``)."""
    return {
        "message_id": state.message_id,
        "state": state.status if state.stage in (Stage.DONE, Stage.REJECTED) else state.stage,
        "terminal": state.stage in (Stage.DONE, Stage.REJECTED),
        "destination": state.destination,
        "client_ref": state.client_ref,
        "route_id": state.route_id,
        "parts": state.parts,
        "parts_accepted": len(state.parts_accepted),
        "parts_failed": len(state.parts_failed),
        "reason_code": state.reason_code,
        "reason": state.reason,
        "error_code": state.error_code,
        "submitted_at": state.submitted_at,
        "done_at": state.done_at,
    }


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One tenant's traffic on one UTC day (``day`` = days since the epoch)."""

    day: int
    messages: int = 0
    parts: int = 0
    delivered: int = 0
    failed: int = 0  # UNDELIVERABLE, EXPIRED, REJECTED or FAILED reports, and rejections


_FAILED: Final = frozenset({"UNDELIVERABLE", "EXPIRED", "REJECTED", "FAILED"})


def terminal(state: MessageState | None) -> bool:
    return state is not None and state.stage in (Stage.DONE, Stage.REJECTED)


def count(usage: DayUsage | None, before: MessageState | None, after: MessageState, day: int
          ) -> DayUsage:
    """Usage after a message moved from ``before`` to ``after`` on UTC ``day``. Each message
    counts once however often its records repeat (a failover routes it again, a record is
    redelivered): only the first submission, part count and terminal outcome count."""
    if usage is not None and day < usage.day:
        return usage  # a late record of a day already closed
    if usage is None or usage.day != day:
        usage = DayUsage(day)
    if (before is None or before.submitted_at is None) and after.submitted_at is not None:
        usage = replace(usage, messages=usage.messages + 1)
    if (before is None or before.parts is None) and after.parts:
        usage = replace(usage, parts=usage.parts + after.parts)
    if not terminal(before) and terminal(after):
        if after.status in ("DELIVERED", "ACCEPTED"):
            usage = replace(usage, delivered=usage.delivered + 1)
        elif after.status in _FAILED:
            usage = replace(usage, failed=usage.failed + 1)
    return usage
