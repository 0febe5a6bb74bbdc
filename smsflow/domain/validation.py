"""Checks on a request's own fields that do not depend on configuration (pure)."""

from __future__ import annotations

import re
from typing import Final

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
