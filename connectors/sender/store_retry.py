"""Records the sender must store, produced again until Kafka takes them.

A part's outcome (``sms.sent``), a rejection, a record's successor (relay, failover) and a
ledger DONE each finish a consumed record: until Kafka stored it, the record's offset stays
uncommitted. librdkafka gives up on a record the broker refuses for good (e.g.
MSG_SIZE_TOO_LARGE, a topic that refuses writes) or that outlived ``message.timeout.ms``
(5 min) of retriable errors, and calls back with the error. Before this module the sender then
only logged it: the record stayed unfinished in a live process, so its commit held and its
message never ended (no outcome, so no report) until someone restarted the sender, whose replay
then resubmitted the parts as in doubt. Found by the ``produce-refused-sender`` chaos drill
(docs/performance.md#chaos-drills-issue-14).

librdkafka may also refuse a record at once: ``produce()`` raises ``KafkaException`` when its
metadata already says the broker refuses the topic (TOPIC_AUTHORIZATION_FAILED once an ACL is
revoked: the ``test_a_revoked_acl_is_visible_in_time`` drill). That raise used to escape into
the SMPP result callback, so the part's outcome was neither stored nor retried. It is treated
as the same refusal as one in a delivery report.

Now such a record is produced again after a backoff (0.5 s doubling to 10 s), the same bytes
with the same callback, for as long as it takes, while :meth:`StoreRetry.waiting` tells the
sender to pause its consumer (it stops taking new work until the broker accepts writes again).
It finishes its record as soon as it is stored. On shutdown the retries stop (the record stays
uncommitted and its next owner replays it: never lost).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0

Delivery = Callable[[KafkaError | None, Message], None]
Produce = Callable[..., None]
"""``SenderService._produce``: (topic, key, value, on_delivery, *, headers=, partition=)."""


def backoff_s(attempt: int) -> float:
    """Seconds before the ``attempt``-th produce again (1-based).

    >>> [backoff_s(n) for n in (1, 2, 3, 6, 7)]
    [0.5, 1.0, 2.0, 10.0, 10.0]
    """
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0 ** (attempt - 1))


class StoreRetry:
    """Thread-safe: ``produce`` from any thread, :meth:`run_due` from the producer-poll thread."""

    def __init__(self, produce: Produce, stopping: Callable[[], bool],
                 stats: dict[str, int] | None = None) -> None:
        self._produce = produce
        self._stopping = stopping
        #: The sender's counters: ``produce_refusals`` (smsflow_sender_produce_refusals_total).
        self._stats = stats if stats is not None else {"produce_refusals": 0}
        self._lock = threading.Lock()
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._waiting = 0  # records refused and not stored since

    def produce(self, topic: str, key: str | None, value: bytes, on_stored: Delivery,
                **extra: Any) -> None:
        """Produce the record; ``on_stored(None, msg)`` once Kafka stored it. Only when the
        sender is stopping does ``on_stored`` get an error (the record is then replayed)."""
        _Pending(self, topic, key, value, on_stored, extra).again()

    def _refused(self, pending: _Pending, error: KafkaError) -> None:
        """``pending`` was refused (again): produce it again after its backoff."""
        pending.attempts += 1
        delay = backoff_s(pending.attempts)
        with self._lock:
            self._stats["produce_refusals"] += 1
            refusals = self._stats["produce_refusals"]
            if pending.attempts == 1:
                self._waiting += 1
            waiting = self._waiting
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), pending.again))
        if refusals & (refusals - 1) == 0:  # the 1st, 2nd, 4th, 8th… refusal: no flood
            log.error("%s not stored (attempt %d; again in %.1fs, %d record(s) waiting, "
                      "consumption paused; %d refusals so far): %s", pending.topic,
                      pending.attempts, delay, waiting, refusals, error)

    def _stored(self, pending: _Pending) -> None:
        """``pending`` is finished (stored, or the sender stops)."""
        if pending.attempts:
            with self._lock:
                self._waiting -= 1

    def run_due(self, now: float) -> int:
        """Produce again every record whose backoff ended; how many."""
        ready = []
        with self._lock:
            while self._due and self._due[0][0] <= now:
                ready.append(heapq.heappop(self._due)[2])
        for produce in ready:
            produce()
        return len(ready)

    @property
    def refusals(self) -> int:
        """Produces Kafka refused so far (each one retried)."""
        with self._lock:
            return self._stats["produce_refusals"]

    def waiting(self) -> int:
        """Records refused and not stored yet: while any wait, the sender takes no new work."""
        with self._lock:
            return self._waiting


class _Pending:
    """One record until Kafka stored it.

    An object with bound methods rather than two closures that name each other: such closures
    form a reference cycle (each holds the other's cell), so every record's callback, and the
    whole submit job it holds, stayed alive until the garbage collector found the cycle. With
    ~35 such objects per message the collector took 0.9-1.0 s of a 20,000-message run's sender
    CPU (0.4 s without them; about 8 % of the sender's CPU per message,
    docs/performance.md#the-senders-garbage)."""

    __slots__ = ("attempts", "extra", "key", "on_stored", "retry", "topic", "value")

    def __init__(self, retry: StoreRetry, topic: str, key: str | None, value: bytes,
                 on_stored: Delivery, extra: dict[str, Any]) -> None:
        self.retry = retry
        self.topic = topic
        self.key = key
        self.value = value
        self.on_stored = on_stored
        self.extra = extra
        self.attempts = 0

    def delivered(self, error: KafkaError | None, message: Message) -> None:
        retry = self.retry
        if error is None or retry._stopping():
            retry._stored(self)
            self.on_stored(error, message)
            return
        retry._refused(self, error)

    def again(self) -> None:
        try:
            self.retry._produce(self.topic, self.key, self.value,
                                self.delivered, **self.extra)
        except KafkaException as exc:  # refused at once (module docstring)
            self.delivered(exc.args[0], None)  # type: ignore[arg-type]  # no message: unused
