from __future__ import annotations

import itertools

from api.status import DayUsage, Event, MessageState, Stage, count, describe, step

SUBMITTED = Event("m", "t", Stage.SUBMITTED, destination="+447700900123", client_ref="r",
                  at=10.0)
ROUTED = Event("m", "t", Stage.ROUTED, route_id="uk-direct", parts=2)
SENT_0 = Event("m", "t", Stage.SENT, part_index=0, part_accepted=True, parts=2)
SENT_1 = Event("m", "t", Stage.SENT, part_index=1, part_accepted=True, parts=2)
DONE = Event("m", "t", Stage.DONE, status="DELIVERED", parts=2, at=20.0)


def fold(events: list[Event]) -> MessageState:
    state: MessageState | None = None
    for event in events:
        state = step(state, event, 0.0)
    assert state is not None
    return state


def test_any_arrival_order_gives_the_same_final_state() -> None:
    events = [SUBMITTED, ROUTED, SENT_0, SENT_1, DONE]
    finals = {describe(fold(list(order)))["state"] for order in itertools.permutations(events)}
    assert finals == {"DELIVERED"}
    final = describe(fold([DONE, SENT_1, ROUTED, SUBMITTED, SENT_0]))
    assert final == {
        "message_id": "m", "state": "DELIVERED", "terminal": True,
        "destination": "+447700900123", "client_ref": "r", "route_id": "uk-direct", "parts": 2,
        "parts_accepted": 2, "parts_failed": 0, "reason_code": None, "reason": None,
        "error_code": None, "submitted_at": 10.0, "done_at": 20.0,
    }


def test_states_only_move_forward() -> None:
    assert fold([SUBMITTED, ROUTED]).stage is Stage.ROUTED
    assert fold([ROUTED, SUBMITTED]).stage is Stage.ROUTED
    assert fold([SUBMITTED, SENT_0, ROUTED]).stage is Stage.SENT


def test_a_rejection_carries_its_reason() -> None:
    rejected = Event("m", "t", Stage.REJECTED, status="REJECTED", reason_code="NO_ROUTE",
                     reason="no route", at=11.0)
    answer = describe(fold([SUBMITTED, rejected]))
    assert (answer["state"], answer["reason_code"], answer["terminal"]) == (
        "REJECTED", "NO_ROUTE", True)


def test_usage_counts_each_message_once_per_day() -> None:
    usage: DayUsage | None = None
    state: MessageState | None = None
    for event in [SUBMITTED, ROUTED, ROUTED, SENT_0, DONE, DONE]:  # a failover routes again
        before = state
        state = step(state, event, 0.0)
        usage = count(usage, before, state, day=5)
    assert usage == DayUsage(5, messages=1, parts=2, delivered=1, failed=0)
    assert count(usage, None, fold([SUBMITTED]), day=4) == usage  # late record of yesterday
    assert count(usage, None, fold([SUBMITTED]), day=6) == DayUsage(6, messages=1)
