"""Checks on a request's own fields that do not depend on configuration (pure).

One home for the rules both front doors apply: the router (records on ``sms.submitted``) and the
HTTP API (``api/``, before it produces), so a message the API accepts is never refused by the
router for its sender or body, and the two give the same reason codes.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from smsflow.domain.encoding import EncodingError, SegmentPlan, part_count, plan_segments

MAX_PARTS: Final = 10  # platform limit of concatenated parts per message
MAX_ALPHANUMERIC_SENDER: Final = 11  # GSM 03.40 TP-OA alphanumeric limit
MAX_NUMERIC_SENDER_DIGITS: Final = 15  # E.164
MIN_NUMERIC_SENDER_DIGITS: Final = 3  # short codes
_ALPHANUMERIC: Final = re.compile(r"^[A-Za-z0-9 .\-_&+!?#']+$")


def source_problem(source: str) -> str | None:
    """Why ``source`` cannot be a sender id, or None if it can.

    Numeric senders (optionally with '+') are short codes or E.164 numbers; alphanumeric ones
    are at most 11 characters of a conservative ASCII set every operator accepts.
    """
    digits = source.removeprefix("+")
    if digits.isdigit() and digits.isascii():
        if MIN_NUMERIC_SENDER_DIGITS <= len(digits) <= MAX_NUMERIC_SENDER_DIGITS:
            return None
        return (
            f"numeric sender {source!r} must have {MIN_NUMERIC_SENDER_DIGITS}-"
            f"{MAX_NUMERIC_SENDER_DIGITS} digits"
        )
    if not source:
        return "sender id is empty"
    if len(source) > MAX_ALPHANUMERIC_SENDER:
        return f"alphanumeric sender {source!r} is longer than {MAX_ALPHANUMERIC_SENDER}"
    if not _ALPHANUMERIC.match(source):
        return f"sender {source!r} has characters operators do not accept"
    return None


class ContentProblem(NamedTuple):
    reason_code: str  # EMPTY_BODY | INVALID_SOURCE | MESSAGE_TOO_LONG (smsflow.domain.reasons)
    detail: str


def check_content(source: str, body: str) -> ContentProblem | SegmentPlan:
    """The body's segment plan (at most :data:`MAX_PARTS` parts), or why the sender id or body
    cannot be sent.

    >>> check_content("ACME", "hello").part_count
    1
    >>> check_content("ACME", "").reason_code
    'EMPTY_BODY'
    """
    problem = _envelope_problem(source, body)
    if problem is not None:
        return problem
    try:
        return plan_segments(body, max_parts=MAX_PARTS)
    except EncodingError as exc:
        return ContentProblem("MESSAGE_TOO_LONG", str(exc))


def content_parts(source: str, body: str) -> ContentProblem | int:
    """What :func:`check_content` decides, as the part count only (cheaper when the body fits
    one part: :func:`~smsflow.domain.encoding.part_count`).

    >>> content_parts("ACME", "hello"), content_parts("ACME", "").reason_code
    (1, 'EMPTY_BODY')
    """
    problem = _envelope_problem(source, body)
    if problem is not None:
        return problem
    try:
        return part_count(body, max_parts=MAX_PARTS)
    except EncodingError as exc:
        return ContentProblem("MESSAGE_TOO_LONG", str(exc))


def _envelope_problem(source: str, body: str) -> ContentProblem | None:
    if not body:
        return ContentProblem("EMPTY_BODY", "message body is empty")
    problem = source_problem(source)
    if problem is not None:
        return ContentProblem("INVALID_SOURCE", problem)
    return None
