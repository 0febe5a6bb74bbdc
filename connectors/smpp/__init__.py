"""SMPP connector: a robust smpplib-based client session (``SmppClient``).

See ``docs/smpp.md``.
"""

from .client import SmppClient, SubmitOptions
from .models import (
    BindMode,
    BindState,
    ClientStats,
    InboundDeliver,
    PartResult,
    SmppClientClosed,
    SmppClientConfig,
    SubmitResult,
    SubmitTimeout,
)

__all__ = [
    "BindMode",
    "BindState",
    "ClientStats",
    "InboundDeliver",
    "PartResult",
    "SmppClient",
    "SmppClientClosed",
    "SmppClientConfig",
    "SubmitOptions",
    "SubmitResult",
    "SubmitTimeout",
]
