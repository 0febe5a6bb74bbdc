"""The project's exception root, and the two kinds of failure every caller must tell apart.

* :class:`PermanentError`: the input itself is wrong (an undecodable record, an invalid
  configuration, a malformed PDU). The same input fails the same way again: reject it (a
  rejection with a reason code on the dead-letter topic, an HTTP 4xx) and move on. Never retry.
* :class:`TransientError`: the input may be fine, something it depends on is not, for now (the
  schema registry is down, a produce was not acknowledged). Retry with back-off, or stop and let
  the process restart from its committed position. Never skip the input: that loses it.

Every exception this project raises on purpose derives from :class:`SmsflowError` (and, where
callers already catch a builtin such as ``ValueError``, from that builtin as well), so
``except SmsflowError`` catches ours and nothing else; tests/unit/test_error_taxonomy.py checks
it for every exception class in the production packages.
"""

from __future__ import annotations

__all__ = ["PermanentError", "SmsflowError", "TransientError"]


class SmsflowError(Exception):
    """Root of every error smsflow raises on purpose."""


class PermanentError(SmsflowError):
    """The input is at fault; the same input fails again. Reject it, do not retry."""


class TransientError(SmsflowError):
    """A dependency failed for now; the input may be fine. Retry or stop, never skip."""
