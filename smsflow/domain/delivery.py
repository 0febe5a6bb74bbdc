"""Message-level delivery status from part-level outcomes (pure).

A multi-part message is DELIVERED only when every part is; otherwise it takes the worst part
status. The order below is the one table that decides "worst": a part we never got to the SMSC
(FAILED) outranks one the SMSC refused (REJECTED), then undeliverable, then expired. ACCEPTED
(the SMSC took the part, no receipt was requested, so its fate is unknown) ranks below every
failure and above DELIVERED: a known failure of any part wins, and a message is DELIVERED only
when every part is known to be delivered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

SEVERITY: Final[dict[str, int]] = {
    "DELIVERED": 0,
    "ACCEPTED": 1,
    "EXPIRED": 2,
    "UNDELIVERABLE": 3,
    "REJECTED": 4,
    "FAILED": 5,
}


def message_status(part_statuses: Iterable[str]) -> str:
    statuses = list(part_statuses)
    if not statuses:
        raise ValueError("a message has at least one part")
    return max(statuses, key=SEVERITY.__getitem__)
