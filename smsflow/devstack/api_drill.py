"""A tenant's client for the API drill: posts every message once with an ``Idempotency-Key``
and, when a request got no answer (the API died under it) or a 5xx, retries it with the same
key until it gets one, as docs/api.md tells tenants to.

Each key's message id is known in advance (:func:`api.messages.message_id` derives it from the
tenant and the key), so the drill can follow every request, answered or not, through the
pipeline, and check that a replayed answer carries the first attempt's id.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from api.messages import message_id
from schemas.models import SubmitRequest

#: Pause between attempts of one request while the API is down.
RETRY_PAUSE_S = 0.2


@dataclass
class ApiDrillResult:
    expected_ids: dict[str, str] = field(default_factory=dict)  # idempotency key -> message id
    accepted: dict[str, str] = field(default_factory=dict)  # key -> id, answered 2xx
    attempts: Counter[str] = field(default_factory=Counter)  # key -> requests made
    failures: Counter[str] = field(default_factory=Counter)  # why an attempt got no 2xx
    refused: dict[str, int] = field(default_factory=dict)  # key -> final 4xx status
    id_mismatches: list[str] = field(default_factory=list)  # keys answered with another id

    @property
    def retried(self) -> int:
        """Requests that needed more than one attempt (their first got no answer or a 5xx)."""
        return sum(1 for n in self.attempts.values() if n > 1)

    @property
    def unanswered(self) -> list[str]:
        return sorted(set(self.expected_ids) - set(self.accepted) - set(self.refused))


def _payload(request: SubmitRequest) -> dict[str, object]:
    return {"destination": request.destination, "source": request.source,
            "body": request.body, "message_type": request.message_type.value,
            "client_ref": request.client_ref}


async def post_all(
    base_url: str, keys: Mapping[str, str], requests: Sequence[SubmitRequest], *,
    concurrency: int = 16, timeout_s: float = 300.0, key_prefix: str = "drill",
    on_answer: Callable[[int], None] | None = None,
) -> ApiDrillResult:
    """POST each request (tenant ``request.tenant_id``, with that tenant's API key from
    ``keys``) under the key ``<key_prefix>-<index>``, retrying until a 2xx or a 4xx answer or
    ``timeout_s``. ``on_answer(n)`` after each 2xx, ``n`` the number so far (the drill's
    moment to kill the API)."""
    result = ApiDrillResult()
    queue: asyncio.Queue[tuple[str, SubmitRequest]] = asyncio.Queue()
    for index, request in enumerate(requests):
        key = f"{key_prefix}-{index}"
        result.expected_ids[key] = message_id(request.tenant_id, key, 0)
        queue.put_nowait((key, request))
    deadline = time.monotonic() + timeout_s
    client_timeout = aiohttp.ClientTimeout(total=15)

    async def one(session: aiohttp.ClientSession, key: str, request: SubmitRequest) -> None:
        headers = {"Authorization": f"Bearer {keys[request.tenant_id]}", "Idempotency-Key": key}
        while time.monotonic() < deadline:
            result.attempts[key] += 1
            try:
                async with session.post(f"{base_url}/v1/messages", json=_payload(request),
                                        headers=headers) as response:
                    body = await response.json(content_type=None)
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                result.failures[type(exc).__name__] += 1
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            if 200 <= status < 300:
                result.accepted[key] = body["message_id"]
                if body["message_id"] != result.expected_ids[key]:
                    result.id_mismatches.append(key)
                if on_answer is not None:
                    on_answer(len(result.accepted))
                return
            if status < 500 and status != 429:
                result.refused[key] = status
                return
            result.failures[f"HTTP {status}"] += 1
            await asyncio.sleep(RETRY_PAUSE_S)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            key, request = queue.get_nowait()
            await one(session, key, request)

    # Keep-alive: a connection the killed API held fails its next request, which is retried.
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return result


__all__ = ["ApiDrillResult", "post_all"]
