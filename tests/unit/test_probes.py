"""Liveness and readiness decisions (smsflow/probes.py)."""

from __future__ import annotations

from smsflow.probes import sender_probe, worker_probe


def test_a_worker_is_ready_once_configured_and_joined() -> None:
    assert not worker_probe(now=100, rebalancing_since=None, config_loaded=False,
                            joined=True).ready
    assert not worker_probe(now=100, rebalancing_since=None, config_loaded=True,
                            joined=False).ready
    probe = worker_probe(now=100, rebalancing_since=None, config_loaded=True, joined=True)
    assert probe.live and probe.ready


def test_a_worker_stuck_in_a_rebalance_is_not_live() -> None:
    short = worker_probe(now=100, rebalancing_since=90, config_loaded=True, joined=True)
    assert short.live and not short.ready, "rebalancing: alive, not ready"
    stuck = worker_probe(now=1000, rebalancing_since=90, config_loaded=True, joined=True,
                         stuck_after_s=300)
    assert not stuck.live and stuck.checks["rebalance_stuck"] is True
    assert stuck.checks["rebalancing_s"] == 910


def test_a_sender_needs_its_group_and_a_bound_bind() -> None:
    assert not sender_probe(now=10, last_round=9.9, joined=False, binds_bound=2,
                            binds_total=2).ready
    assert not sender_probe(now=10, last_round=9.9, joined=True, binds_bound=0,
                            binds_total=2).ready
    probe = sender_probe(now=10, last_round=9.9, joined=True, binds_bound=1, binds_total=2)
    assert probe.live and probe.ready and probe.checks["binds_total"] == 2


def test_a_sender_whose_loop_stopped_turning_is_not_live() -> None:
    assert not sender_probe(now=100, last_round=30, joined=True, binds_bound=1,
                            binds_total=1, stall_after_s=60).live
