"""Mobile-originated (MO) messages: tenant resolution, opt-out keywords and the opt-out decision.

Theory of operation. A subscriber's MO message arrives as a ``deliver_sm`` that is not a receipt.
Its destination address is one of a tenant's numbers (sender id, short code, long number); the
sender resolves the tenant with :func:`resolve_tenant` over an index built once from the platform
configuration by :func:`build_number_index`. The text is matched against the tenant's keyword
lists with :func:`keyword_action` (whole message, case- and whitespace-insensitive, trailing
punctuation ignored: ``" Stop. "`` is ``STOP``; ``"stop sending me offers"`` is not — a sentence
is a conversation, not a command). The resulting state is a value: :func:`apply_action` turns the
current opted-out flag and an action into the next flag, and the router's decision is a set
lookup, :func:`is_opted_out`, on keys made by :func:`opt_out_key`.

Nothing here does I/O or reads a clock.

>>> keywords = KeywordLists()
>>> action = keyword_action("  stop ", keywords)
>>> action
<InboundKeyword.OPT_OUT: 'OPT_OUT'>
>>> opted = apply_action(False, action)
>>> opted_out = {opt_out_key("acme", "+447700900123")} if opted else set()
>>> is_opted_out(opted_out, "acme", "+447700900123")
True
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "DEFAULT_OPT_IN",
    "DEFAULT_OPT_OUT",
    "OPTED_OUT",
    "InboundKeyword",
    "KeywordLists",
    "apply_action",
    "build_number_index",
    "is_opted_out",
    "keyword_action",
    "normalize_address",
    "opt_out_key",
    "resolve_tenant",
]

#: Industry-common defaults (CTIA / UK MNO practice); a tenant's configuration may replace them.
DEFAULT_OPT_OUT: Final[frozenset[str]] = frozenset(
    {"STOP", "UNSUBSCRIBE", "STOPALL", "CANCEL", "END", "QUIT", "OPTOUT"}
)
DEFAULT_OPT_IN: Final[frozenset[str]] = frozenset({"START", "UNSTOP", "SUBSCRIBE", "OPTIN"})

#: The router's reason code for a message to a subscriber who opted out (domain/reasons.py).
OPTED_OUT: Final = "OPTED_OUT"

_SPACES = re.compile(r"\s+")
_TRAILING_PUNCTUATION = ".!?,;:"


class InboundKeyword(StrEnum):
    """What an MO text asks for; the values are the Avro symbols of ``InboundMessage.avsc``."""

    OPT_OUT = "OPT_OUT"
    OPT_IN = "OPT_IN"
    NONE = "NONE"


def _normalize_keyword(text: str) -> str:
    return _SPACES.sub(" ", text).strip().rstrip(_TRAILING_PUNCTUATION).strip().upper()


@dataclass(frozen=True)
class KeywordLists:
    """One tenant's keywords, stored normalized (upper case, single spaces)."""

    opt_out: frozenset[str] = DEFAULT_OPT_OUT
    opt_in: frozenset[str] = DEFAULT_OPT_IN

    def __post_init__(self) -> None:
        opt_out = frozenset(_normalize_keyword(k) for k in self.opt_out)
        opt_in = frozenset(_normalize_keyword(k) for k in self.opt_in)
        if "" in opt_out or "" in opt_in:
            raise ValueError("an empty keyword would match every blank message")
        overlap = opt_out & opt_in
        if overlap:
            raise ValueError(f"keywords both opt out and opt in: {sorted(overlap)}")
        object.__setattr__(self, "opt_out", opt_out)
        object.__setattr__(self, "opt_in", opt_in)

    @classmethod
    def of(cls, opt_out: Iterable[str] | None, opt_in: Iterable[str] | None) -> KeywordLists:
        """Lists from configuration; ``None`` keeps the default for that side."""
        return cls(
            opt_out=frozenset(opt_out) if opt_out is not None else DEFAULT_OPT_OUT,
            opt_in=frozenset(opt_in) if opt_in is not None else DEFAULT_OPT_IN,
        )


def keyword_action(text: str, keywords: KeywordLists) -> InboundKeyword:
    """What a whole MO text asks for.

    >>> keyword_action("Unsubscribe!", KeywordLists())
    <InboundKeyword.OPT_OUT: 'OPT_OUT'>
    >>> keyword_action("unstop", KeywordLists())
    <InboundKeyword.OPT_IN: 'OPT_IN'>
    >>> keyword_action("stop it please", KeywordLists())
    <InboundKeyword.NONE: 'NONE'>
    """
    word = _normalize_keyword(text)
    if word in keywords.opt_out:
        return InboundKeyword.OPT_OUT
    if word in keywords.opt_in:
        return InboundKeyword.OPT_IN
    return InboundKeyword.NONE


def apply_action(opted_out: bool, action: InboundKeyword) -> bool:
    """The subscriber's next opted-out flag: the latest keyword wins, other texts change nothing."""
    if action is InboundKeyword.OPT_OUT:
        return True
    if action is InboundKeyword.OPT_IN:
        return False
    return opted_out


def opt_out_key(tenant_id: str, subscriber_e164: str) -> str:
    """The opt-out table key: ``tenant|+E164`` (a ``str`` key, as faust tables need)."""
    return f"{tenant_id}|{normalize_address(subscriber_e164)}"


def is_opted_out(opted_out: Container[str], tenant_id: str, destination_e164: str) -> bool:
    """The router's decision: one lookup (a set, or the worker's opt-out table)."""
    return opt_out_key(tenant_id, destination_e164) in opted_out


def normalize_address(address: str) -> str:
    """An address as a lookup key: digits-only numbers get a ``+`` (SMSCs send international
    numbers with or without it, TON tells which); alphanumeric sender ids are upper-cased.

    >>> [normalize_address(a) for a in ("447700900123", " +44 7700 900123", "Acme", "60001")]
    ['+447700900123', '+447700900123', 'ACME', '60001']
    """
    compact = _SPACES.sub("", address)
    digits = compact[1:] if compact.startswith("+") else compact
    if digits.isdigit():
        # Short codes (up to 8 digits) are national: no "+", they are not E.164.
        return digits if len(digits) <= 8 and not compact.startswith("+") else f"+{digits}"
    return compact.upper()


def build_number_index(numbers_by_tenant: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """``normalized address → tenant``; raises ``ValueError`` if two tenants claim one address
    (an MO to it could not be attributed, so configuration must not allow it)."""
    index: dict[str, str] = {}
    for tenant_id, numbers in numbers_by_tenant.items():
        for number in numbers:
            key = normalize_address(number)
            owner = index.setdefault(key, tenant_id)
            if owner != tenant_id:
                raise ValueError(f"address {number!r} belongs to both {owner!r} and {tenant_id!r}")
    return index


def resolve_tenant(destination: str, index: Mapping[str, str]) -> str | None:
    """The tenant owning an MO's destination address, or ``None`` (published as unknown)."""
    return index.get(normalize_address(destination))
