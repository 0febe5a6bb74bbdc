"""Accepting messages: the steps every submit request takes, in order, as one function.

1. The tenant must be configured and not quarantined (403).
2. A stored answer for the request's ``Idempotency-Key`` is returned as it was
   (:mod:`api.idempotency`); a copy in flight in this process is waited for.
3. Every message passes the pipeline's content rules (422; a batch is all or nothing).
4. The tenant's API rate admits the messages (429 with Retry-After; refused requests reserve
   nothing).
5. The messages are produced to ``sms.submitted`` and awaited (503 if Kafka did not store them
   all in time: the client retries, with the same key it gets the same ids).
6. Under a key, the answer is stored before it is given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from api.admission import retry_after_header
from api.errors import ApiError
from api.idempotency import StoredAnswer, fingerprint, record_key
from api.kafka_out import DeliveryFailed
from api.messages import (
    Checked,
    MessageIn,
    Problem,
    check_message,
    fresh_ids,
    message_id,
    submit_request,
)
from api.runtime import ApiRuntime
from api.submit_avro import SubmitEncoder
from smsflow.config.models import Tenant

log = logging.getLogger(__name__)

SINGLE = "/v1/messages"
BATCH = "/v1/messages/batch"


def active_tenant(runtime: ApiRuntime, tenant_id: str) -> Tenant:
    tenant = runtime.config.current.tenants.get(tenant_id)
    if tenant is None:
        raise ApiError("UNKNOWN_TENANT", f"tenant {tenant_id!r} is not configured")
    if tenant.quarantined:
        raise ApiError("TENANT_QUARANTINED", f"tenant {tenant_id!r} is quarantined")
    return tenant


async def accept(
    runtime: ApiRuntime,
    tenant_id: str,
    route: str,
    messages: list[MessageIn],
    idempotency_key: str | None,
) -> dict[str, Any]:
    """The 202 body, or raises :class:`ApiError`."""
    tenant = active_tenant(runtime, tenant_id)
    if idempotency_key is None:
        return await _accept(runtime, tenant, route, messages, None)
    key = record_key(tenant_id, idempotency_key)
    request_fingerprint = fingerprint(route, [m.model_dump(mode="json") for m in messages])
    store = runtime.idempotency
    while True:
        stored = store.lookup(key, request_fingerprint, time.time())
        if stored is not None:
            return stored.body
        running = store.claim(key)
        if running is None:
            break
        try:
            first = await asyncio.shield(running)
        except asyncio.CancelledError:
            if running.cancelled():
                continue  # the first copy failed: this one tries for itself
            raise
        if first.fingerprint != request_fingerprint:
            raise ApiError("IDEMPOTENCY_KEY_REUSED")
        return first.body
    answer: StoredAnswer | None = None
    try:
        body = await _accept(runtime, tenant, route, messages, idempotency_key)
        answer = StoredAnswer(
            fingerprint=request_fingerprint, status=202, body=body, stored_at=time.time()
        )
        try:
            await runtime.out.put(runtime.idempotency_topic, key.encode(), store.encode(answer))
        except DeliveryFailed as exc:
            # The messages are stored; refusing now would make the client send them again
            # without a key. This process still remembers the answer (below), so only a retry
            # that reaches another process, or this one after a restart, produces again, with
            # the same ids (see api.messages.message_id).
            log.error("answer for %s not stored on the topic: a retry on this process gets it "
                      "from memory, one on another process (or after a restart) produces the "
                      "same ids again: %s", key, exc)
        store.remember(key, answer)
        return body
    finally:
        store.release(key, answer)


async def _accept(
    runtime: ApiRuntime,
    tenant: Tenant,
    route: str,
    messages: list[MessageIn],
    idempotency_key: str | None,
) -> dict[str, Any]:
    numbering = runtime.config.current.numbering
    checked: list[Checked] = []
    problems: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        result = check_message(message, numbering)
        if isinstance(result, Problem):
            problems.append({"index": index, "code": result.reason_code,
                             "message": result.detail})
        else:
            checked.append(result)
    if problems:
        if route == SINGLE:
            raise ApiError(str(problems[0]["code"]), str(problems[0]["message"]))
        raise ApiError(
            "INVALID_MESSAGES",
            f"{len(problems)} of {len(messages)} messages are invalid; none was accepted",
            details=problems,
        )
    wait_s = runtime.admission.admit(tenant, len(messages), time.monotonic())
    if wait_s is not None:
        raise ApiError(
            "RATE_LIMITED",
            f"over the API rate of tenant {tenant.id!r}; retry in {wait_s:.2f} s",
            headers={"Retry-After": retry_after_header(wait_s)},
        )
    ids = (
        fresh_ids(len(messages)) if idempotency_key is None
        else [message_id(tenant.id, idempotency_key, index) for index in range(len(messages))]
    )
    try:
        await _produce(runtime, tenant.id, messages, checked, ids)
    except DeliveryFailed as exc:
        raise ApiError("KAFKA_UNAVAILABLE", f"Kafka did not store the messages: {exc}") from exc
    runtime.metrics.accepted.labels(tenant.id).inc(len(ids))
    # Plain dicts in the shape of AcceptedMessage / AcceptedBatch (api/app.py answers them
    # without a second validation; test_api_openapi keeps the shapes documented).
    accepted = [
        {"message_id": id_, "parts": c.parts} for id_, c in zip(ids, checked, strict=True)
    ]
    if route == SINGLE:
        return accepted[0]
    return {"messages": accepted}


async def _produce(
    runtime: ApiRuntime, tenant_id: str, messages: list[MessageIn], checked: list[Checked],
    ids: list[str],
) -> None:
    """Encode and produce the messages; returns once Kafka stored them all."""
    now = datetime.now(UTC)
    encoder = SubmitEncoder.for_request(tenant_id, now)
    if encoder is None:  # a schema registry, or a contract this encoder was not written for
        await runtime.out.submit(
            submit_request(tenant_id, message, result, id_, now)
            for message, result, id_ in zip(messages, checked, ids, strict=True)
        )
        return
    await runtime.out.submit_encoded(tenant_id.encode(), [
        encoder.encode(id_, m.source, c.e164, m.body, m.message_type, m.validity_s,
                       m.registered_delivery, m.client_ref)
        for m, c, id_ in zip(messages, checked, ids, strict=True)
    ])
