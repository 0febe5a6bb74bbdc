"""``Idempotency-Key``: a retried request gets the first answer and never produces twice.

Theory of operation
-------------------
The first answer (status and body) to a tenant's key is stored on ``sms.api-idempotency``
(keyed ``<tenant>/<key>``, compacted, deleted after 2 days) before the client sees it, and every
API process follows that topic (:class:`~api.follower.TopicFollower`), so a retry that lands on
another process, or on this one after a restart, finds it. With the answer comes a fingerprint
of the request (route and body): the same key with a different request is refused
(``IDEMPOTENCY_KEY_REUSED``) instead of silently answering for another request.

Only accepted requests (202) are stored: a refused request produced nothing, so retrying it is
safe and should be judged afresh (a quarantine may have been lifted, a rate window passed).

Two copies of a request in flight at once in one process: the second waits for the first and
returns its answer (:meth:`IdempotencyStore.claim`). In flight at once on two processes, before
either answer is stored, both would produce; the message ids are derived from the key
(:func:`api.messages.message_id`), so both copies carry the same ids.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from api.errors import ApiError
from api.follower import TopicFollower
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)

_KEY_PATTERN: Final = re.compile(r"^[\x21-\x7e]{1,255}$")


class StoredAnswer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprint: str
    status: int
    body: dict[str, Any]
    stored_at: float  # Unix seconds


def check_key(value: str) -> str:
    if not _KEY_PATTERN.match(value):
        raise ApiError("INVALID_IDEMPOTENCY_KEY")
    return value


def record_key(tenant_id: str, idempotency_key: str) -> str:
    return f"{tenant_id}/{idempotency_key}"


def fingerprint(route: str, payload: Any) -> str:
    canonical = json.dumps([route, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, bootstrap: KafkaTarget, topic: str, ttl_s: float) -> None:
        self.topic = topic
        self._ttl_s = ttl_s
        self._answers: dict[str, StoredAnswer] = {}
        self._in_flight: dict[str, asyncio.Future[StoredAnswer]] = {}
        self.follower = TopicFollower(bootstrap, topic, self._apply, name="idempotency")

    def _apply(self, key: bytes, value: bytes | None) -> None:
        name = key.decode(errors="replace")
        if value is None:
            self._answers.pop(name, None)
            return
        try:
            self._answers[name] = StoredAnswer.model_validate_json(value)
        except ValidationError as exc:
            log.warning("stored answer %s is unreadable; a retry will be judged anew: %s",
                        name, exc)

    def remember(self, key: str, answer: StoredAnswer) -> None:
        """Keep an answer this process stored (before the follower reads it back)."""
        self._answers[key] = answer

    def lookup(self, key: str, request_fingerprint: str, now: float) -> StoredAnswer | None:
        answer = self._answers.get(key)
        if answer is None or now - answer.stored_at > self._ttl_s:
            return None
        if answer.fingerprint != request_fingerprint:
            raise ApiError("IDEMPOTENCY_KEY_REUSED")
        return answer

    def claim(self, key: str) -> asyncio.Future[StoredAnswer] | None:
        """None: the caller owns the key now and must :meth:`release` it. Otherwise the same
        request is in flight in this process: await the returned future for its answer."""
        running = self._in_flight.get(key)
        if running is not None:
            return running
        self._in_flight[key] = asyncio.get_running_loop().create_future()
        return None

    def release(self, key: str, answer: StoredAnswer | None) -> None:
        """End the caller's claim; waiters get ``answer``, or run the request themselves."""
        future = self._in_flight.pop(key, None)
        if future is not None and not future.done():
            if answer is not None:
                future.set_result(answer)
            else:
                future.cancel()

    def prune(self, now: float) -> int:
        """Forget answers past the TTL (the topic deletes them after 2 days too)."""
        expired = [k for k, a in list(self._answers.items()) if now - a.stored_at > self._ttl_s]
        for key in expired:
            self._answers.pop(key, None)
        return len(expired)

    def encode(self, answer: StoredAnswer) -> bytes:
        return answer.model_dump_json().encode()

    def __len__(self) -> int:
        return len(self._answers)
