"""A short path for valid submit requests, in front of FastAPI (measured: docs/performance.md).

FastAPI's per-request machinery (routing, dependency resolution, request validation wrappers)
was the largest share of a single POST's CPU. This ASGI layer answers ``POST /v1/messages`` and
``POST /v1/messages/batch`` itself when a request is plainly valid: a JSON body, a bearer key
that authenticates, a well-formed ``Idempotency-Key`` (or none), and a body the same pydantic
models accept. Such a request then takes the same steps as through FastAPI
(:func:`api.service.accept`: quarantine, idempotency, content checks, API rate, produce), and
its errors from there are answered by the same :func:`api.errors` mapping.

Anything else (malformed JSON, a missing or unknown key, schema errors, a process still
loading) is handed to the FastAPI app unchanged, with the body it already read replayed, so
every error answer stays exactly the documented one. FastAPI still serves the OpenAPI document
for both routes. It sits in front of FastAPI's own middleware stack (``api.app._Api``), behind
the same size cap and metrics (``api.app._Guard``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import service
from api.errors import ApiError
from api.idempotency import check_key
from api.messages import BatchIn, MessageIn
from api.runtime import ApiRuntime

log = logging.getLogger(__name__)

SUBMIT_ROUTES = frozenset((service.SINGLE, service.BATCH))


class _RouteLabel:
    """What the metrics middleware reads from ``scope["route"]`` (the route template)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


_LABELS = {path: _RouteLabel(path) for path in SUBMIT_ROUTES}

Parsed = tuple[str, list[MessageIn], str | None]  # tenant id, messages, idempotency key


class FastSubmit:
    def __init__(
        self,
        app: ASGIApp,
        runtime: ApiRuntime,
        respond: Callable[[dict[str, Any]], Response],
        respond_error: Callable[[ApiError], Response],
    ) -> None:
        self.app = app
        self.runtime = runtime
        self._respond = respond
        self._respond_error = respond_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope.get("method") != "POST" or path not in SUBMIT_ROUTES:
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except ApiError as exc:  # the size cap (api.app._Guard counts what is read)
            await self._respond_error(exc)(scope, receive, send)
            return
        replay = _replaying(body, receive)
        parsed = self._parse(scope, path, body)
        if parsed is None:
            await self.app(scope, replay, send)
            return
        scope["route"] = _LABELS[path]
        tenant_id, messages, key = parsed
        try:
            response = self._respond(
                await service.accept(self.runtime, tenant_id, path, messages, key)
            )
        except ApiError as exc:
            response = self._respond_error(exc)
        except Exception:
            log.exception("submit failed")
            response = self._respond_error(ApiError("INTERNAL_ERROR"))
        await response(scope, replay, send)

    def _parse(self, scope: Scope, path: str, body: bytes) -> Parsed | None:
        """The request's parts if it is plainly valid; None hands it to FastAPI."""
        if not self.runtime.loaded():
            return None
        content_type = authorization = idempotency = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"authorization":
                authorization = value
            elif name == b"idempotency-key":
                idempotency = value
        if content_type is None or not content_type.startswith(b"application/json"):
            return None
        if authorization is None or authorization[:7].lower() != b"bearer ":
            return None
        tenant_id = self.runtime.keys.authenticate(authorization[7:].decode("latin-1").strip())
        if tenant_id is None:
            return None
        key = None
        if idempotency is not None:
            try:
                key = check_key(idempotency.decode("latin-1"))
            except ApiError:
                return None
        try:  # parsing and validating in one pass (pydantic's JSON mode): ~1.4 µs less per
            # message than orjson.loads + model_validate; invalid JSON is a ValidationError too
            if path == service.SINGLE:
                messages = [MessageIn.model_validate_json(body)]
            else:
                messages = BatchIn.model_validate_json(body).messages
        except ValidationError:
            return None
        return tenant_id, messages, key


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read once, then waits like the original."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
