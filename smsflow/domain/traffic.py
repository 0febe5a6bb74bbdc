"""Traffic classes the domain decides on: the tenant's tier, the message type, a route's binds.

Owned by the domain: the configuration models (:mod:`smsflow.config.models`), the Avro
contracts (:mod:`schemas.models`) and the pipeline all use these classes, never a copy converted
with ``.value``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BindClass", "MessageType", "Tier"]


class Tier(StrEnum):
    PREMIUM = "premium"
    STANDARD = "standard"
    ECONOMY = "economy"


class MessageType(StrEnum):
    """Traffic class of a message, as routes allow it and ``SubmitRequest.message_type`` carries it.

    Values are the Avro symbols of ``SubmitRequest.avsc`` (upper case, released: do not change).
    Parsing is case-insensitive (configuration files and the CLI write ``otp``); :attr:`label`
    is the lower-case form people read in explanations and rejection reasons.
    """

    OTP = "OTP"
    TRANSACTIONAL = "TRANSACTIONAL"
    MARKETING = "MARKETING"

    @classmethod
    def _missing_(cls, value: object) -> MessageType | None:
        if isinstance(value, str):
            return next((m for m in cls if m.value == value.upper()), None)
        return None

    @property
    def label(self) -> str:
        return self.value.lower()


class BindClass(StrEnum):
    """What a route's binds are for: Premium prefers dedicated, Standard shared, Economy bulk."""

    DEDICATED = "dedicated"
    SHARED = "shared"
    BULK = "bulk"
