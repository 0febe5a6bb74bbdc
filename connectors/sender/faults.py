"""Test-only fault injection for the sender: off unless its environment variable is set.

``SMSFLOW_TEST_HOLD_RECEIPT=<path>``: the first delivery receipt the sender reads is held on its
session thread after the ``deliver_sm`` arrived and *before* its ``ReceiptEvent`` is produced
(so before any ``deliver_sm_resp``): the sender writes the receipt's SMSC message id to
``<path>`` and blocks that thread for good. A test then SIGKILLs the sender at a known point of
the receipt window (tests/integration/test_receipt_window.py). Never set it in production: the
bind stops reading its socket.
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

    def before_storing(self, smsc_message_id: str) -> None:
        """Return at once, unless armed: then, for the first receipt only, mark and block."""
        if self._marker is None or not self._taken.acquire(blocking=False):
            return
        self._marker.write_text(smsc_message_id, encoding="utf-8")
        log.warning("holding receipt %s before storing it (%s)", smsc_message_id,
                    ENV_HOLD_RECEIPT)
        threading.Event().wait()  # until the process is killed
