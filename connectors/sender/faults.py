"""Test-only fault injection for the sender: off unless its environment variable is set.

``SMSFLOW_TEST_HOLD_RECEIPT=<path>``: the first delivery receipt the sender reads is held after
the ``deliver_sm`` arrived and *before* its ``ReceiptEvent`` is produced: the sender writes the
receipt's SMSC message id to ``<path>`` and never produces it, so the receipt stays in the
window between arrival and produce ack for good, while the bind goes on working (its session
thread still writes every other response: an acknowledgement given before the store would reach
the SMSC). A test then SIGKILLs the sender at that known point
(tests/integration/test_receipt_window.py). Never set it in production: that receipt is only
delivered again once the bind ends.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

ENV_HOLD_RECEIPT = "SMSFLOW_TEST_HOLD_RECEIPT"


class ReceiptHold:
    """Holds the first receipt when :data:`ENV_HOLD_RECEIPT` names a marker file."""

    def __init__(self, marker: Path | None) -> None:
        self._marker = marker
        self._taken = threading.Lock()

    @classmethod
    def from_env(cls) -> ReceiptHold:
        value = os.environ.get(ENV_HOLD_RECEIPT)
        if value:
            log.warning("%s is set: the first receipt will be held (a test-only fault)",
                        ENV_HOLD_RECEIPT)
        return cls(Path(value) if value else None)

    def holds(self, smsc_message_id: str) -> bool:
        """False (store the receipt), unless armed: then True for the first receipt only, after
        writing its id to the marker file (the caller then neither produces nor answers it)."""
        if self._marker is None or not self._taken.acquire(blocking=False):
            return False
        self._marker.write_text(smsc_message_id, encoding="utf-8")
        log.warning("holding receipt %s before storing it (%s)", smsc_message_id,
                    ENV_HOLD_RECEIPT)
        return True
