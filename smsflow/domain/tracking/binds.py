"""Which SMSCs have a bound connection: the senders' bind reports folded into one answer.

Every sender process reports, per SMSC, how many binds it holds (``sms.smsc-binds``, keyed by
``<smsc>/<instance>``): on every change and as a heartbeat every ``heartbeat_s``; a stopping
sender deletes its reports. :func:`smsc_bound` answers for one SMSC at ``now_ms``:

* True when a fresh report (younger than :data:`STALE_AFTER_HEARTBEATS` heartbeats) has a
  bind up;
* False when there are fresh reports and none has a bind up: every running sender lost its
  binds, so the SMSC's routes are DOWN (:func:`~smsflow.domain.tracking.observe_bind`);
* None when nothing fresh is known (no sender runs, or all crashed without a tombstone): the
  binds say nothing, and the delivery and error rates judge the route as before.

:func:`after_grace` turns that answer into the one route health acts on: an SMSC counts as
unbound only once it has been unbound for a grace period. SMSCs drop binds routinely
(maintenance, enquire_link timeouts, a load balancer's idle cut) and senders re-bind within a
second or two; the sender holds the SMSC's messages meanwhile and fails them over only after
its own wait (``FAILOVER_AFTER_S``). Taking the routes DOWN at the first dropped bind made the
router refuse new traffic with ``NO_ROUTE`` for every blip (the chaos drill's
``smsc-disconnect``: three quarters of its messages).

Pure: the caller passes the reports and the time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["STALE_AFTER_HEARTBEATS", "BindReport", "Board", "after_grace", "apply_report",
           "holder_partitions", "smsc_bound"]

#: A report older than this many of its heartbeats is ignored (its sender is presumed gone).
STALE_AFTER_HEARTBEATS: Final = 3


@dataclass(frozen=True, slots=True)
class BindReport:
    bound: int
    heartbeat_s: int
    updated_at_ms: int
    #: The sms.throttled partitions the reporting sender consumes (bind leases: where a sender
    #: without a bind to this SMSC passes its messages).
    partitions: tuple[int, ...] = ()


#: smsc id → sender instance → its latest report.
Board = dict[str, dict[str, BindReport]]


def apply_report(board: Board, smsc_id: str, instance: str, report: BindReport | None) -> None:
    """Fold one record (None: the tombstone of a stopped sender) into ``board``, in place."""
    if report is None:
        instances = board.get(smsc_id)
        if instances is not None:
            instances.pop(instance, None)
            if not instances:
                del board[smsc_id]
        return
    board.setdefault(smsc_id, {})[instance] = report


def _fresh(report: BindReport, now_ms: int) -> bool:
    return now_ms - report.updated_at_ms <= STALE_AFTER_HEARTBEATS * report.heartbeat_s * 1000


def smsc_bound(board: Mapping[str, Mapping[str, BindReport]], smsc_id: str,
               now_ms: int) -> bool | None:
    """See the module docstring."""
    fresh = [report for report in board.get(smsc_id, {}).values() if _fresh(report, now_ms)]
    if not fresh:
        return None
    return any(report.bound > 0 for report in fresh)


def after_grace(raw: bool | None, unbound_since_ms: int | None, now_ms: int,
                grace_ms: int) -> tuple[bool | None, int | None]:
    """The answer route health acts on, and when the SMSC became unbound (to pass back next
    time): ``raw`` (:func:`smsc_bound`) unless it is False for less than ``grace_ms``, which
    still answers True. Any other answer clears the unbound-since time."""
    if raw is not False:
        return raw, None
    since = now_ms if unbound_since_ms is None else unbound_since_ms
    return (now_ms - since < grace_ms) or False, since


def holder_partitions(board: Mapping[str, Mapping[str, BindReport]], smsc_id: str,
                      now_ms: int, *, besides: str) -> list[int]:
    """The sms.throttled partitions of the senders other than ``besides`` that hold a bind to
    ``smsc_id`` now (fresh reports only), sorted; empty when no other sender can take its
    messages."""
    return sorted({
        partition
        for instance, report in board.get(smsc_id, {}).items()
        if instance != besides and report.bound > 0 and _fresh(report, now_ms)
        for partition in report.partitions
    })
