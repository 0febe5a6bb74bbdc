"""Daily quota usage per tenant, persisted in the faust table ``tenant-quota``.

The table is keyed by tenant id, like ``sms.submitted``, so it is co-partitioned with the
router's input: the worker that owns a tenant's partition owns its quota row, and faust restores
the row from the table's changelog (compacted) on restart or rebalance before the router reads
the partition again.

A row is written for every record charged, in the router's loop over that record, before the
record can be passed on. faust sends the changelog write then, and flushes its producer before
it commits any input offset, so the row is never behind a committed record. It can be *ahead*
of the committed offset after a crash (charged, not committed): the row remembers the last
record charged (its partition and offset), and a re-delivered record at or below it is admitted
without being charged again (:func:`~smsflow.domain.limits.quota.charge_record`).

Tenants without a ``daily_quota`` get no row and cost no write.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import faust

from smsflow.domain.limits.quota import (
    EXCEEDED,
    REPLAYED,
    QuotaUsage,
    TenantQuota,
    charge_record,
)

__all__ = ["QuotaBook", "QuotaRefusal", "decode_row", "encode_row"]

log = logging.getLogger(__name__)

TABLE = "tenant-quota"


def encode_row(state: TenantQuota) -> bytes:
    """``[day, used, partition, offset]`` as JSON (the bytes ``json.dumps`` writes for four
    ints, a fifth of its cost: one row per routed message)."""
    day, used = int(state.usage.day), int(state.usage.used)
    return f"[{day}, {used}, {int(state.partition)}, {int(state.offset)}]".encode()


def decode_row(raw: bytes | None) -> TenantQuota | None:
    """The stored row, or None if absent or unreadable (then the tenant starts the day afresh,
    which is logged: an unreadable row must not stop the router)."""
    if raw is None:
        return None
    try:
        day, used, partition, offset = json.loads(raw)
        return TenantQuota(QuotaUsage(int(day), int(used)), int(partition), int(offset))
    except (ValueError, TypeError) as exc:
        log.warning("unreadable %s row %r (%s): counted from zero", TABLE, raw[:80], exc)
        return None


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    detail: str


class QuotaBook:
    """The router's view of the table: charge a record, or say why it does not fit."""

    def __init__(self, app: faust.App) -> None:
        # No default factory: a missing key reads as None through .get().
        self.table = app.Table(TABLE, key_type=str, value_type=bytes)
        self.replayed = 0  # records admitted without a charge (re-delivered after a crash)
        # The row each tenant was last charged with, decoded, beside the bytes written: the
        # next charge reads the table and, finding those very bytes, skips decoding them.
        self._decoded: dict[str, tuple[bytes, TenantQuota]] = {}

    def charge(
        self, tenant_id: str, quota: int | None, parts: int, now: float,
        partition: int, offset: int,
    ) -> QuotaRefusal | None:
        """Charge one record of ``sms.submitted``; must run in the agent, on that record."""
        if quota is None:
            return None
        raw = self.table.get(tenant_id)
        known = self._decoded.get(tenant_id)
        state = known[1] if known is not None and known[0] is raw else decode_row(raw)
        new, outcome = charge_record(state, quota, parts, now, partition, offset)
        if outcome == EXCEEDED:
            return QuotaRefusal(
                f"tenant {tenant_id} used {new.usage.used} of its daily quota of {quota} parts; "
                f"this message needs {parts}"
            )
        if outcome == REPLAYED:
            self.replayed += 1
            if self.replayed & (self.replayed - 1) == 0:  # 1, 2, 4, 8…: visible, not noisy
                log.info("%d re-delivered records admitted without a second quota charge "
                         "(last: tenant %s, %d@%d)", self.replayed, tenant_id, partition, offset)
            return None
        row = encode_row(new)
        self.table[tenant_id] = row
        self._decoded[tenant_id] = (row, new)
        return None
