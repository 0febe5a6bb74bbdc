"""When the webhook connector pauses and resumes partitions."""

from __future__ import annotations

import pytest

from connectors.webhooks.backpressure import Backpressure, Changes


def test_a_tenant_over_its_bound_pauses_its_partition_until_low_water() -> None:
    gate = Backpressure(tenant_high=10, tenant_low=5)
    assert gate.tenant("slow", 9, 2) == Changes()
    assert gate.tenant("slow", 10, 2) == Changes(pause=frozenset({2}))
    assert gate.tenant("slow", 11, 2) == Changes()  # already paused
    assert gate.tenant("slow", 6, 2) == Changes()  # hysteresis
    assert gate.tenant("slow", 5, 2) == Changes(resume=frozenset({2}))
    assert gate.paused() == frozenset()


def test_a_partition_resumes_only_when_every_holder_let_go() -> None:
    gate = Backpressure(tenant_high=10, tenant_low=5, ledger_high=100, ledger_low=50)
    assert gate.tenant("a", 10, 0).pause == {0}
    assert gate.tenant("b", 10, 0) == Changes()
    assert gate.ledger(0, 100) == Changes()
    assert gate.tenant("a", 0, 0) == Changes()
    assert gate.ledger(0, 10) == Changes()
    assert gate.tenant("b", 0, 0) == Changes(resume=frozenset({0}))


def test_the_ledger_bound_is_per_partition() -> None:
    gate = Backpressure(ledger_high=100, ledger_low=50)
    assert gate.ledger(1, 100) == Changes(pause=frozenset({1}))
    assert gate.ledger(2, 60) == Changes()
    assert gate.ledger(2, 10) == Changes()  # releasing partition 2 does not touch 1
    assert gate.paused() == {1}
    assert gate.ledger(1, 50) == Changes(resume=frozenset({1}))


def test_forget_clears_a_revoked_partition() -> None:
    gate = Backpressure(tenant_high=2, tenant_low=1)
    gate.tenant("a", 2, 3)
    gate.forget(3)
    assert gate.paused() == frozenset()
    assert gate.tenant("a", 2, 3) == Changes(pause=frozenset({3}))  # pauses again when re-held


def test_low_water_must_be_below_high_water() -> None:
    with pytest.raises(ValueError, match="low-water"):
        Backpressure(tenant_high=5, tenant_low=5)
