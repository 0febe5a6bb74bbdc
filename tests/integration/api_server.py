"""A real API server (uvicorn on a free port, in the test's event loop) and a client for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import uvicorn
from pydantic import SecretStr

from api.app import create_app
from api.runtime import ApiRuntime
from api.settings import ApiSettings
from smsflow.devstack.harness import free_port
from smsflow.settings import Settings

PEPPER = "integration-test-pepper-0123456789"


def api_settings(**overrides: Any) -> ApiSettings:
    return ApiSettings(key_pepper=SecretStr(PEPPER), **overrides)


class RunningApi:
    def __init__(self, base_url: str, runtime: ApiRuntime, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.runtime = runtime
        self.session = session

    async def request(
        self, method: str, path: str, *, key: str | None = None, json: Any = None,
        data: bytes | None = None, headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, self.base_url + path, json=json, data=data, headers=sent
        ) as response:
            body = await response.json(content_type=None) if response.content_length != 0 else {}
            return response.status, body, dict(response.headers)

    async def status_once_known(self, message_id: str, key: str, timeout_s: float = 10.0,
                                ) -> tuple[int, dict[str, Any]]:
        """``GET /v1/messages/{id}`` until it answers 200 (the status store reads Kafka
        behind the submit) or ``timeout_s`` passes: the last answer."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, body, _ = await self.request("GET", f"/v1/messages/{message_id}", key=key)
            if status == 200 or time.monotonic() > deadline:
                return status, body
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running_api(settings: Settings, api: ApiSettings | None = None,
                      ready_timeout_s: float = 30.0) -> AsyncIterator[RunningApi]:
    """Start the app on a free port, wait until /readyz says ready and the status store has
    caught up, stop it on exit."""
    api = api or api_settings()
    runtime = ApiRuntime(settings, api, PEPPER.encode())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning",
                       lifespan="on", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with aiohttp.ClientSession() as session:
            running = RunningApi(f"http://127.0.0.1:{port}", runtime, session)
            deadline = time.monotonic() + ready_timeout_s
            while True:
                if serving.done():
                    serving.result()
                    raise RuntimeError("the API server stopped during start-up")
                if server.started:
                    status, body, _headers = await running.request("GET", "/readyz")
                    # Ready for POSTs, and the status store has read what was there at start
                    # (so GETs and usage counts are deterministic in tests).
                    stores = api.status_enabled and api.role == "all"
                    if status == 200 and (not stores or body["checks"]["status"]):
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("the API did not become ready")
                await asyncio.sleep(0.05)
            yield running
    finally:
        server.should_exit = True
        await serving
