"""Liveness and readiness of the long-running processes: pure decisions, time passed in.

Kubernetes restarts a pod whose liveness fails and sends no work (or no rollout progress) to one
that is not ready. What each process answers (``GET /healthz`` = live, ``GET /readyz`` = ready,
JSON with the checks; 200 or 503):

* **worker** (faust web port): live unless a consumer-group rebalance has been running longer
  than ``stuck_after_s`` (a failover drill saw one worker hang for 8 minutes inside faust's
  rebalance, waiting for events that never came: a restart is the cure); ready once the
  configuration is loaded and the consumer has joined its group (an assignment, possibly empty:
  with more workers than partitions the spare ones are ready and idle).
* **sender** (metrics port): live while its consumer loop turns (a round at least every
  ``stall_after_s``); ready once it joined its group and holds at least one bound SMPP bind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["REBALANCE_STUCK_S", "ROUND_STALL_S", "Probe", "sender_probe", "worker_probe"]

#: A rebalance longer than this is a hung worker (faust's own rebalances take seconds).
REBALANCE_STUCK_S: Final = 300.0
#: A sender consumer loop that has not turned for this long is hung (a round is <= ~0.1 s).
ROUND_STALL_S: Final = 60.0


@dataclass(frozen=True)
class Probe:
    live: bool
    ready: bool
    checks: dict[str, Any] = field(default_factory=dict)


def worker_probe(*, now: float, rebalancing_since: float | None, config_loaded: bool,
                 joined: bool, stuck_after_s: float = REBALANCE_STUCK_S) -> Probe:
    rebalancing_s = None if rebalancing_since is None else round(now - rebalancing_since, 1)
    stuck = rebalancing_s is not None and rebalancing_s > stuck_after_s
    return Probe(
        live=not stuck,
        ready=config_loaded and joined and rebalancing_s is None,
        checks={"rebalancing_s": rebalancing_s, "rebalance_stuck": stuck,
                "config_loaded": config_loaded, "joined": joined},
    )


def sender_probe(*, now: float, last_round: float, joined: bool, binds_bound: int,
                 binds_total: int, stall_after_s: float = ROUND_STALL_S) -> Probe:
    since_round = round(now - last_round, 1)
    return Probe(
        live=since_round <= stall_after_s,
        ready=joined and binds_bound > 0,
        checks={"seconds_since_consumer_round": since_round, "joined": joined,
                "binds_bound": binds_bound, "binds_total": binds_total},
    )
