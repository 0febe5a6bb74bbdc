"""The sender's second look at ``sms.config``: when a record names an SMSC it has no
connection for (a route added since it started may point at a new one).

At most every :data:`CONFIG_REFRESH_MIN_S`, so a stream of records for an SMSC that really is
unknown costs one read per interval, not one per record. A read that fails (a record that does
not validate while ``config apply`` is half written or another version wrote it, or Kafka not
answering) keeps the previous configuration: the caller goes on, and :attr:`problem` says why
for the rejections it writes meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaException

from schemas.codec import DecodeError
from smsflow.config.models import PlatformConfig

__all__ = ["CONFIG_REFRESH_MIN_S", "ConfigRefresh"]

log = logging.getLogger(__name__)

CONFIG_REFRESH_MIN_S = 5.0


class ConfigRefresh:
    """``read()`` reads the configuration (blocking); :meth:`fresh` calls it when due."""

    def __init__(self, read: Callable[[], PlatformConfig],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read, self._clock = read, clock
        self._read_at = clock()
        #: Why the last read failed (None: it did not).
        self.problem: str | None = None
        self.failures = 0

    def fresh(self) -> PlatformConfig | None:
        """The configuration read now; None if the last read is too recent or this one
        failed (then :attr:`problem` says why)."""
        if self._clock() - self._read_at < CONFIG_REFRESH_MIN_S:
            return None
        self._read_at = self._clock()
        try:
            config = self._read()
        except (ValueError, DecodeError, TimeoutError, RuntimeError, KafkaException) as exc:
            # ConfigError and pydantic's errors are ValueErrors.
            self.problem = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            self.failures += 1
            log.error("reading the configuration failed; keeping the previous one: %s",
                      self.problem)
            return None
        self.problem = None
        return config
