"""Role ``submit``: the GET routes that need a store are answered by the status process.

A submit process keeps no status or inbound store (each folds all of the pipeline's stage
traffic: measured at ~0.1 ms of CPU per accepted single message and ~35 µs per batch message in
every API process, docs/performance.md#http-api). It authenticates the request itself, as for
any route, then passes the path, the query string and the caller's ``Authorization`` header on
to ``SMSFLOW_API_STATUS_URL`` (a process of role ``all``) and returns that answer unchanged.
The status process authenticates the key again and scopes the answer to its tenant, so the
semantics are those of a single process: another tenant's id is 404 there, hence here.
"""

from __future__ import annotations

import aiohttp
from starlette.requests import Request
from starlette.responses import Response

from api.errors import ApiError

_PASSED_BACK = ("Retry-After",)


class StatusForward:
    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, request: Request) -> Response:
        """The status process's answer to this GET, or 503 ``NOT_READY`` if it gave none."""
        if self._session is None:
            raise ApiError("NOT_READY", "the status forwarder is not started")
        url = self.base_url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        headers = {"Authorization": request.headers.get("authorization", "")}
        try:
            async with self._session.get(url, headers=headers) as answer:
                body = await answer.read()
                passed = {h: answer.headers[h] for h in _PASSED_BACK if h in answer.headers}
                return Response(
                    body, status_code=answer.status, headers=passed,
                    media_type=answer.headers.get("Content-Type", "application/json"),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(
                "NOT_READY", f"the status service did not answer: {type(exc).__name__}"
            ) from exc
