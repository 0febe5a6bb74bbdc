"""The HTTP surface: routes, authentication, error mapping, metrics (FastAPI on uvicorn).

Every answer that is not a success has the body ``{"code", "message"}`` (:mod:`api.errors`),
including the framework's own validation errors, which are mapped here: invalid JSON is 400
``MALFORMED_JSON``, a batch above 1,000 messages 413 ``BATCH_TOO_LARGE``, anything else that does
not match the schema 422 ``INVALID_REQUEST`` naming the field.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import service
from api.errors import ERRORS, ApiError
from api.fast_submit import SUBMIT_ROUTES, FastSubmit
from api.idempotency import check_key
from api.inbound import DEFAULT_PAGE, MAX_PAGE, InboundPage, InvalidCursor, Page, decode_cursor
from api.inbound_feed import InboundStore
from api.messages import (
    MAX_BATCH,
    AcceptedBatch,
    AcceptedMessage,
    BatchIn,
    ErrorBody,
    MessageIn,
    MessageStatus,
    Usage,
    usage_answer,
)
from api.runtime import ApiRuntime
from api.settings import load_api_settings, resolve_pepper
from api.status import describe
from api.status_feed import StatusStore
from smsflow.gc_policy import apply_thresholds
from smsflow.kafka_refusal import arm
from smsflow.settings import load_settings

API_VERSION = "1.0.0"
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer smsf_...`")


class _Json(JSONResponse):
    """JSON encoded by orjson (several times faster than the json module for these bodies)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error_response(error: ApiError, runtime: ApiRuntime) -> JSONResponse:
    runtime.metrics.errors.labels(error.code).inc()
    return _Json(error.body(), status_code=error.status, headers=error.headers)


def _accepted(body: dict[str, Any]) -> Response:
    """The 202 answer as it is: a returned Response skips FastAPI's response_model validation
    and jsonable_encoder pass (the body is built from validated values in api.service), and
    orjson encodes it. The response_model still documents it in the OpenAPI document."""
    return _Json(body, status_code=202)


def _from_validation(exc: RequestValidationError) -> ApiError:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        reason = detail.get("ctx", {}).get("error", "invalid JSON")
        position = detail.get("loc", ("body", "?"))[-1]
        return ApiError("MALFORMED_JSON", f"the body is not valid JSON: {reason} at {position}")
    for e in errors:
        if tuple(e.get("loc", ())) == ("body", "messages") and e.get("type") == "too_long":
            return ApiError("BATCH_TOO_LARGE", f"a batch holds at most {MAX_BATCH} messages")
    described = [
        {"field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "body",
         "type": e.get("type"), "message": e.get("msg")}
        for e in errors
    ]
    first = described[0] if described else {"field": "body", "message": "invalid"}
    return ApiError(
        "INVALID_REQUEST", f"{first['field']}: {first['message']}", details=described
    )


_GUARDED = "smsflow.guarded"


class _Guard:
    """Pure ASGI middleware: body size cap, in-flight gauge, per-route counts and latency."""

    def __init__(self, app: ASGIApp, runtime: ApiRuntime, max_body_bytes: int) -> None:
        self.app = app
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(_GUARDED):
            await self.app(scope, receive, send)  # counted already, in front of FastAPI
            return
        scope[_GUARDED] = True
        metrics = self.runtime.metrics
        started = time.perf_counter()
        status = 500
        metrics.in_flight.inc()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            too_large = self._declared_too_large(scope)
            if too_large is not None:
                response = _error_response(too_large, self.runtime)
                await response(scope, receive, capture)
                return
            await self.app(scope, self._counting(receive), capture)
        finally:
            metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.observe(template, status, time.perf_counter() - started)

    def _declared_too_large(self, scope: Scope) -> ApiError | None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return ApiError(
                    "PAYLOAD_TOO_LARGE", f"the body is above {self.max_body_bytes} bytes"
                )
        return None

    def _counting(self, receive: Receive) -> Receive:
        """Chunked bodies declare no length: count them as they are read."""
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise ApiError(
                        "PAYLOAD_TOO_LARGE", f"the body is above {self.max_body_bytes} bytes"
                    )
            return message

        return counted


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": "; ".join(
        f"`{code}`" for code, kind in ERRORS.items() if kind.status == status
    )}
    for status in sorted({kind.status for kind in ERRORS.values()})
}


def _runtime(request: Request) -> ApiRuntime:
    runtime: ApiRuntime = request.app.state.runtime
    return runtime


async def tenant_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The tenant of the presented API key (401 without one, or with an unknown or revoked
    one)."""
    runtime = _runtime(request)
    if not runtime.loaded():
        # Before the key table, configuration and stored answers are read, a valid key would
        # get 401, a configured tenant 403 and a retried request a second copy.
        raise ApiError("NOT_READY", "the key table, configuration or stored answers are loading")
    if credentials is None:
        raise ApiError("UNAUTHENTICATED")
    tenant_id = runtime.keys.authenticate(credentials.credentials)
    if tenant_id is None:
        raise ApiError("INVALID_API_KEY")
    return tenant_id


def idempotency_key(
    value: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="Retry-safe key, 1-255 ASCII characters."),
    ] = None,
) -> str | None:
    return None if value is None else check_key(value)


TenantId = Annotated[str, Depends(tenant_of)]
IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


def _status_store(runtime: ApiRuntime) -> StatusStore:
    store = runtime.status
    if store is None:
        raise ApiError("NOT_READY", "message status is switched off on this process")
    if not store.follower.caught_up.is_set():
        raise ApiError("NOT_READY", "the message status store is still loading")
    return store


def _inbound_store(runtime: ApiRuntime) -> InboundStore:
    store = runtime.inbound
    if store is None:
        raise ApiError("NOT_READY", "inbound messages are switched off on this process")
    if not store.follower.caught_up.is_set():
        raise ApiError("NOT_READY", "the inbound message store is still loading")
    return store


def _page_response(page: Page) -> Response:
    """The page's stored JSON objects joined as they are (no per-message re-encoding)."""
    head = orjson.dumps({"next_cursor": page.next_cursor, "has_more": page.has_more})
    body = b'{"messages":[' + b",".join(item.document for item in page.items) + b"]," + head[1:]
    return Response(body, media_type="application/json")


class _Api(FastAPI):
    """FastAPI with a front door for the two submit routes. A py-spy profile of single POSTs
    had FastAPI's own middleware stack (ServerErrorMiddleware, telemetry, body limit) and
    Starlette's dispatch around every request; plainly valid submits need none of it (their
    errors are answered by api.errors all the same), so :attr:`front` takes them first."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.front is not None and scope["type"] == "http"
            and scope.get("method") == "POST" and scope.get("path") in SUBMIT_ROUTES
        ):
            await self.front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(runtime: ApiRuntime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = _Api(
        title="smsflow tenant API",
        version=API_VERSION,
        description="Submit SMS to the smsflow platform. Errors: docs/api.md.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc, runtime)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(_from_validation(exc), runtime)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code)
        if code is None:
            return JSONResponse({"code": "HTTP_ERROR", "message": str(exc.detail)},
                                status_code=exc.status_code)
        return _error_response(ApiError(code), runtime)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        # Starlette still logs the traceback and re-raises after answering.
        return _error_response(ApiError("INTERNAL_ERROR"), runtime)

    @app.post(
        service.SINGLE, status_code=202, response_model=AcceptedMessage,
        responses=_ERROR_RESPONSES, summary="Submit one message",
    )
    async def submit_one(
        message: MessageIn, tenant_id: TenantId, key: IdempotencyKey
    ) -> Response:
        return _accepted(
            await service.accept(runtime, tenant_id, service.SINGLE, [message], key)
        )

    @app.post(
        service.BATCH, status_code=202, response_model=AcceptedBatch,
        responses=_ERROR_RESPONSES, summary="Submit up to 1,000 messages (all or none)",
    )
    async def submit_batch(batch: BatchIn, tenant_id: TenantId, key: IdempotencyKey
                           ) -> Response:
        return _accepted(
            await service.accept(runtime, tenant_id, service.BATCH, batch.messages, key)
        )

    @app.get(
        "/v1/messages/{message_id}", response_model=MessageStatus,
        responses=_ERROR_RESPONSES, summary="A message's current state (your messages only)",
    )
    async def message_status(message_id: str, tenant_id: TenantId, request: Request) -> Any:
        if runtime.forward is not None:
            return await runtime.forward.get(request)
        state = _status_store(runtime).state(tenant_id, message_id)
        if state is None:
            raise ApiError("NOT_FOUND", f"no message {message_id!r} of yours is known")
        return describe(state)

    @app.get(
        "/v1/usage", response_model=Usage, responses=_ERROR_RESPONSES,
        summary="Your traffic today (UTC) against your quota and rates",
    )
    async def usage(tenant_id: TenantId, request: Request) -> Any:
        if runtime.forward is not None:
            return await runtime.forward.get(request)
        tenant = service.active_tenant(runtime, tenant_id)
        return usage_answer(tenant, _status_store(runtime).usage_today(tenant_id))

    @app.get(
        "/v1/inbound", response_model=InboundPage, responses=_ERROR_RESPONSES,
        summary="Your recent inbound (MO) messages, oldest first",
    )
    async def inbound(
        tenant_id: TenantId,
        request: Request,
        since: Annotated[datetime | None, Query(
            description="Only messages received at or after this time (ISO 8601; UTC if no "
            "offset is given).")] = None,
        cursor: Annotated[str | None, Query(
            max_length=4_096, description="`next_cursor` of the previous page.")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Messages per page.")]
        = DEFAULT_PAGE,
    ) -> Response:
        if runtime.forward is not None:
            return await runtime.forward.get(request)
        store = _inbound_store(runtime)
        try:
            after = decode_cursor(cursor)
        except InvalidCursor as exc:
            raise ApiError("INVALID_CURSOR", str(exc)) from exc
        since_s = None
        if since is not None:
            since_s = (since if since.tzinfo else since.replace(tzinfo=UTC)).timestamp()
        return _page_response(store.page(tenant_id, after, since_s, limit))

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Kafka reachable, key table and configuration loaded",
             responses={503: {"description": "Not ready (see checks)"}})
    async def readyz() -> JSONResponse:
        readiness = await runtime.readiness()
        checks = {"kafka": readiness.kafka, "keys": readiness.keys,
                  "config": readiness.config, "idempotency": readiness.idempotency,
                  "status": readiness.status, "inbound": readiness.inbound}
        if runtime.api.role == "submit":  # keeps neither store: an always-false check misleads
            del checks["status"], checks["inbound"]
        if readiness.ready:
            return JSONResponse({"status": "ready", "checks": checks})
        return JSONResponse(
            {"code": "NOT_READY", "message": ERRORS["NOT_READY"].meaning, "checks": checks},
            status_code=503,
        )

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(runtime.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Guard, runtime=runtime, max_body_bytes=runtime.api.max_body_bytes)

    async def behind_front(scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(app, scope, receive, send)

    # Valid submits are answered in front of FastAPI's own middleware stack; the same _Guard
    # (size cap, metrics) wraps them, and marks the scope so the one inside does not count
    # what FastSubmit hands on.
    app.front = _Guard(
        FastSubmit(behind_front, runtime, respond=_accepted,
                   respond_error=lambda error: _error_response(error, runtime)),
        runtime=runtime, max_body_bytes=runtime.api.max_body_bytes,
    )
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory (``smsflow api``): settings and the pepper from the environment."""
    api = load_api_settings()
    arm()  # uvicorn's worker processes too: a refusal at run time ends them (kafka_refusal.py)
    settings = load_settings()
    apply_thresholds(settings.gc_thresholds)  # in every uvicorn worker too
    return create_app(ApiRuntime(settings, api, resolve_pepper(api)))
