"""Message-level delivery status from part-level outcomes (pure).

A multi-part message is DELIVERED only when every part is; otherwise it takes the worst part
status. The order below is the one table that decides "worst": a part we never got to the SMSC
(FAILED) outranks one the SMSC refused (REJECTED), then undeliverable, then expired.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

SEVERITY: Final[dict[str, int]] = {
    "DELIVERED": 0,
    "EXPIRED": 1,
    "UNDELIVERABLE": 2,
    "REJECTED": 3,
    "FAILED": 4,
}


def message_status(part_statuses: Iterable[str]) -> str:
    statuses = list(part_statuses)
    if not statuses:
        raise ValueError("a message has at least one part")
    return max(statuses, key=SEVERITY.__getitem__)
