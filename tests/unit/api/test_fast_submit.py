"""The short submit path hands everything that is not plainly valid to FastAPI, body intact."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from api.errors import ApiError
from api.fast_submit import FastSubmit

VALID = json.dumps({"destination": "+447700900123", "source": "ACME", "body": "hi"}).encode()
KEY = "smsf_good"


class _Keys:
    def authenticate(self, presented: str) -> str | None:
        return "acme-bank" if presented == KEY else None


class _Runtime:
    keys = _Keys()

    def __init__(self, loaded: bool = True) -> None:
        self._loaded = loaded

    def loaded(self) -> bool:
        return self._loaded


def _scope(headers: dict[str, str], path: str = "/v1/messages") -> Scope:
    return {"type": "http", "method": "POST", "path": path,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


def _parse(headers: dict[str, str], body: bytes, loaded: bool = True) -> Any:
    fast = FastSubmit(_inner_app([]), _Runtime(loaded),  # type: ignore[arg-type]
                      respond=JSONResponse, respond_error=lambda e: JSONResponse(e.body()))
    return fast._parse(_scope(headers), "/v1/messages", body)


def _inner_app(seen: list[bytes]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        seen.append(message["body"])
        await Response("delegated", status_code=299)(scope, receive, send)
    return app


GOOD = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}


def test_a_plainly_valid_request_is_parsed_for_the_short_path() -> None:
    tenant, messages, key = _parse({**GOOD, "Idempotency-Key": "order-1"}, VALID)
    assert (tenant, messages[0].destination, key) == ("acme-bank", "+447700900123", "order-1")


def test_anything_else_goes_to_fastapi() -> None:
    assert _parse(GOOD, VALID, loaded=False) is None
    assert _parse({**GOOD, "Authorization": "Bearer smsf_wrong"}, VALID) is None
    assert _parse({"Content-Type": "application/json"}, VALID) is None
    assert _parse({**GOOD, "Content-Type": "text/plain"}, VALID) is None
    assert _parse({**GOOD, "Idempotency-Key": "bad key\x01"}, VALID) is None
    assert _parse(GOOD, b"{not json") is None
    assert _parse(GOOD, json.dumps({"destination": "+44", "extra": 1}).encode()) is None


def test_a_delegated_request_reaches_fastapi_with_its_body() -> None:
    seen: list[bytes] = []
    sent: list[Message] = []
    fast = FastSubmit(_inner_app(seen), _Runtime(),  # type: ignore[arg-type]
                      respond=JSONResponse, respond_error=lambda e: JSONResponse(e.body()))
    chunks = [b"{not ", b"json"]

    async def receive() -> Message:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(fast(_scope(GOOD), receive, send))
    assert seen == [b"{not json"]
    assert sent[0]["status"] == 299


def test_the_size_cap_while_reading_is_answered_not_raised() -> None:
    sent: list[Message] = []
    fast = FastSubmit(_inner_app([]), _Runtime(),  # type: ignore[arg-type]
                      respond=JSONResponse,
                      respond_error=lambda e: JSONResponse(e.body(), status_code=e.status))

    async def receive() -> Message:
        raise ApiError("PAYLOAD_TOO_LARGE")

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(fast(_scope(GOOD), receive, send))
    assert sent[0]["status"] == 413
