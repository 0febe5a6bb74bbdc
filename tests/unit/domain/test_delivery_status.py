"""Message status from part statuses, and the status tables agreeing with the contract."""

from __future__ import annotations

import pytest

from schemas.models import DeliveryStatus
from smsflow.domain.delivery import SEVERITY, message_status
from smsflow.domain.receipts import TERMINAL_STATUS_BY_STATE
from smsflow.domain.tracking import NEUTRAL_STATUSES, TERMINAL_STATUSES


def test_every_contract_status_is_known_everywhere() -> None:
    """DeliveryStatus (domain), DeliveryStatus (Avro contract) and the severity table name the same
    statuses, in the same order (done markers store the DeliveryStatus position)."""
    assert [s.value for s in DeliveryStatus] == [s.value for s in DeliveryStatus]
    assert set(SEVERITY) == {s.value for s in DeliveryStatus}
    # Each status is either counted by the tracking windows or explicitly neutral.
    assert set(TERMINAL_STATUSES) | set(NEUTRAL_STATUSES) == set(DeliveryStatus)
    assert not set(TERMINAL_STATUSES) & set(NEUTRAL_STATUSES)


def test_no_receipt_state_maps_to_accepted() -> None:
    """ACCEPTED comes only from a submit without a receipt request; an ACCEPTD receipt is an
    intermediate state, not this status."""
    assert DeliveryStatus.ACCEPTED not in TERMINAL_STATUS_BY_STATE.values()


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["ACCEPTED"], "ACCEPTED"),
        (["ACCEPTED", "ACCEPTED", "ACCEPTED"], "ACCEPTED"),
        (["DELIVERED", "DELIVERED"], "DELIVERED"),
        # Delivered only when every part is known delivered.
        (["DELIVERED", "ACCEPTED"], "ACCEPTED"),
        # Any known failure outranks "accepted, fate unknown".
        (["ACCEPTED", "EXPIRED"], "EXPIRED"),
        (["ACCEPTED", "UNDELIVERABLE"], "UNDELIVERABLE"),
        (["REJECTED", "ACCEPTED"], "REJECTED"),
        (["ACCEPTED", "FAILED", "ACCEPTED"], "FAILED"),
        (["EXPIRED", "UNDELIVERABLE", "REJECTED", "FAILED", "DELIVERED"], "FAILED"),
    ],
)
def test_message_status_ranks_accepted_between_delivered_and_failures(
    parts: list[str], expected: str
) -> None:
    assert message_status(parts) == expected


def test_severity_order() -> None:
    order = sorted(SEVERITY, key=SEVERITY.__getitem__)
    assert order == ["DELIVERED", "ACCEPTED", "EXPIRED", "UNDELIVERABLE", "REJECTED", "FAILED"]


def test_a_message_has_parts() -> None:
    with pytest.raises(ValueError):
        message_status([])
