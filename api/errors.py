"""Every error the API answers, in one table: stable ``code`` → HTTP status and meaning.

Clients key on ``code`` (the body is ``{"code": ..., "message": ...}``); ``message`` is for
humans and may change. Message-content codes are the pipeline's own reason codes
(:mod:`smsflow.domain.reasons`), so a message refused here is refused for the reason the router
would have given.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from starlette.exceptions import HTTPException

from smsflow.domain.errors import SmsflowError


class ErrorKind(NamedTuple):
    status: int
    meaning: str


ERRORS: Final[dict[str, ErrorKind]] = {
    "MALFORMED_JSON": ErrorKind(400, "The body is not valid JSON."),
    "INVALID_REQUEST": ErrorKind(
        422, "The body does not match the schema (unknown or missing field, wrong type)."
    ),
    "INVALID_NUMBER": ErrorKind(422, "The destination is not a valid E.164 number."),
    "UNSUPPORTED_DESTINATION": ErrorKind(
        422, "The destination is a valid number but cannot receive SMS (fixed line, toll free...)."
    ),
    "EMPTY_BODY": ErrorKind(422, "The message body is empty."),
    "INVALID_SOURCE": ErrorKind(
        422, "The sender id is not a valid short code, number or alphanumeric id."
    ),
    "MESSAGE_TOO_LONG": ErrorKind(422, "The body needs more than 10 SMS parts."),
    "INVALID_MESSAGES": ErrorKind(
        422, "One or more messages of a batch are invalid; nothing was accepted (see errors)."
    ),
    "IDEMPOTENCY_KEY_REUSED": ErrorKind(
        422, "The Idempotency-Key was used before with a different request."
    ),
    "INVALID_IDEMPOTENCY_KEY": ErrorKind(
        400, "The Idempotency-Key header must be 1-255 printable ASCII characters."
    ),
    "UNAUTHENTICATED": ErrorKind(401, "No API key was presented (Authorization: Bearer <key>)."),
    "INVALID_API_KEY": ErrorKind(401, "The API key is unknown or revoked."),
    "UNKNOWN_TENANT": ErrorKind(403, "The key's tenant is not configured on the platform."),
    "TENANT_QUARANTINED": ErrorKind(403, "The tenant is quarantined; traffic is refused."),
    "INVALID_CURSOR": ErrorKind(400, "The cursor is not one this API returned."),
    "NOT_FOUND": ErrorKind(404, "No such resource."),
    "METHOD_NOT_ALLOWED": ErrorKind(405, "The resource does not take this method."),
    "PAYLOAD_TOO_LARGE": ErrorKind(413, "The request body is larger than the API accepts."),
    "BATCH_TOO_LARGE": ErrorKind(413, "A batch holds at most 1,000 messages."),
    "RATE_LIMITED": ErrorKind(
        429, "Over the tenant's API rate; retry after the Retry-After seconds."
    ),
    "INTERNAL_ERROR": ErrorKind(
        500, "A bug on our side; the request may or may not have been accepted: retry with the "
        "same Idempotency-Key."
    ),
    "KAFKA_UNAVAILABLE": ErrorKind(
        503, "Kafka did not store the messages in time; nothing is acknowledged, retry (with "
        "the same Idempotency-Key)."
    ),
    "NOT_READY": ErrorKind(503, "The process has not loaded its key table or configuration."),
}


class ApiError(SmsflowError, HTTPException):
    """An answer other than success; the app turns it into the JSON error body.

    A Starlette ``HTTPException``, so that one raised while the framework reads the body (the
    size cap in :mod:`api.app`) reaches our handler instead of becoming a generic 400.
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        kind = ERRORS[code]  # an unlisted code is a bug: fail loudly
        super().__init__(kind.status, message or kind.meaning, headers)
        self.code = code
        self.status = kind.status
        self.message = message or kind.meaning
        self.headers: dict[str, str] = headers or {}
        self.details = details

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["errors"] = self.details
        return body
