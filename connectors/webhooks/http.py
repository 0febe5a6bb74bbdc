"""One signed POST of one report or MO message: the only module that talks HTTP."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from connectors.webhooks.payload import Kind, request_headers
from connectors.webhooks.policy import parse_retry_after
from smsflow.config.models import Webhook

_DETAIL_BYTES = 200  # of a refusal's body, for the rejection's detail


@dataclass(frozen=True)
class AttemptResult:
    status: int | None  # None: no HTTP response at all
    retry_after_s: float | None
    detail: str


def new_session() -> aiohttp.ClientSession:
    # limit=0: no shared connection cap. The default pool of 100 would be one more queue all
    # tenants wait in; concurrency is already bounded by each tenant's max_in_flight.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def post_event(
    session: aiohttp.ClientSession, webhook: Webhook, url: str, kind: Kind, delivery_id: str,
    body: bytes, now: float,
) -> AttemptResult:
    """POST ``body`` to ``url`` (the webhook's ``url`` or ``mo_url``) signed with its secret."""
    headers = request_headers(webhook.secret.get_secret_value(), delivery_id, body, now, kind)
    try:
        async with session.post(
            url, data=body, headers=headers, allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=webhook.timeout_s),
        ) as response:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
            if 200 <= response.status < 300:
                return AttemptResult(response.status, retry_after, f"HTTP {response.status}")
            excerpt = (await response.content.read(_DETAIL_BYTES)).decode(errors="replace")
            detail = f"HTTP {response.status}" + (f": {excerpt.strip()}" if excerpt else "")
            return AttemptResult(response.status, retry_after, detail)
    except TimeoutError:  # aiohttp's timeouts subclass TimeoutError
        return AttemptResult(None, None, f"no response within {webhook.timeout_s:g}s")
    except aiohttp.ClientError as exc:
        return AttemptResult(None, None, f"{type(exc).__name__}: {exc}")
