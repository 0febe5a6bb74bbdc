"""Quarantine holding: a quarantined tenant's messages wait on ``sms.held``, not in memory.

The router parks every ``sms.submitted`` record of a tenant whose configuration says
``quarantined: true`` (set by ``smsflow tenants quarantine``) on ``sms.held``, unchanged and
keyed by tenant, and acks its source once Kafka has the copy: nothing is held in memory and no
offset of other tenants is pinned for the hours a quarantine may last.

A :class:`~pipeline.deferral.DeferredReleaser` (one per worker, consumer group
``<app id>-held``) reads ``sms.held``. A partition whose head record belongs to a tenant that is
still quarantined is paused and sought back to that record, and looked at again every
:data:`RECHECK_S`. Once the tenant is released (``smsflow tenants release``), its records are
sent back to ``sms.submitted`` as they were, at most ``held_release_per_s`` a second, and the
router handles them like any new record (it parks them again if the tenant is quarantined again
by then). A tenant removed from the configuration is released too: the router then rejects its
records with ``UNKNOWN_TENANT``, so nothing waits forever.

``smsflow tenants release --reject-held`` releases the tenant with ``reject_held_before`` set to
that instant: records parked before it are not sent on but dead-lettered on ``sms.rejected``
with ``TENANT_QUARANTINED`` (the original bytes kept), so the operator decides what a quarantine
costs the tenant's queued traffic; records parked later flow as usual.

Known limit: records keep their order per partition, so a released tenant whose records sit
behind a still-quarantined tenant's on the same ``sms.held`` partition waits for that one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from pipeline.agents.release_task import register_releaser
from pipeline.app import Worker
from pipeline.decoding import decode_or_log
from pipeline.deferral import HELD
from schemas.models import SubmitRequest
from smsflow.topics import HELD as HELD_TOPIC
from smsflow.topics import SUBMITTED

__all__ = ["RECHECK_S", "Hold", "register"]

#: How often a paused ``sms.held`` partition looks at its head's tenant again (seconds).
RECHECK_S = 1.0

#: ``hold(key, value)``: park an ``sms.submitted`` record on ``sms.held``; the returned future
#: resolves once Kafka has it (the guarded consumer commits the source only after that).
Hold = Callable[[bytes, bytes], Awaitable["asyncio.Future[Any]"]]


def register(worker: Worker) -> Hold:
    """The hold the router calls, and this worker's releaser of ``sms.held``."""
    config_watcher = worker.config_watcher
    held_out = worker.output(HELD_TOPIC)

    def is_quarantined(tenant_id: str) -> bool:
        """Whether the configuration in use quarantines ``tenant_id`` (unknown: no)."""
        tenant = config_watcher.snapshot.tenant(tenant_id)
        return tenant is not None and tenant.quarantined

    async def hold(key: bytes, value: bytes) -> asyncio.Future[Any]:
        sent = await held_out.send(key=key, value=value)
        HELD.parked += 1
        return cast("asyncio.Future[Any]", sent)

    def due_at(record: Any) -> float | None:
        tenant_id = (record.key or b"").decode(errors="replace")
        return time.time() + RECHECK_S if is_quarantined(tenant_id) else None

    async def refuse(record: Any) -> tuple[str, str, str | None] | None:
        """TENANT_QUARANTINED for a record parked before the tenant's --reject-held release."""
        tenant_id = (record.key or b"").decode(errors="replace")
        tenant = config_watcher.snapshot.tenant(tenant_id)
        cutoff = tenant.reject_held_before if tenant is not None else None
        if cutoff is None or record.timestamp > cutoff.timestamp() * 1000:
            return None
        request = await decode_or_log(SubmitRequest, record, "held record")
        return ("TENANT_QUARANTINED",
                f"held while {tenant_id!r} was quarantined; released with --reject-held",
                request.message_id if request is not None else None)

    register_releaser(
        worker, parked=HELD_TOPIC, back_to=SUBMITTED, group_suffix="held",
        # before the configuration is read, every tenant would look released
        ready=config_watcher.wait_ready, refuse=refuse,
        due_at=due_at, stats=HELD, name="held releaser",
    )
    return hold
