"""Bind leases: a sender process binds to an SMSC only in a slot Kafka's group coordinator gave it.

An SMSC account allows a fixed number of concurrent binds (``Smsc.binds``); one more is refused
(ESME_RBINDFAIL) and some SMSCs block the account for it. So the allowance is a budget shared by
every sender replica, not a per-process count. Each SMSC has a slot topic
``sms.bind-slots.<smsc_id>`` with one partition per allowed bind; every sender subscribes to the
slot topics of all configured SMSCs in one consumer group (``<app_id>-bind-slots``). The
coordinator assigns each partition to one member at a time: a partition is a lease on one bind.
The topics carry no records; only the assignment matters.

Why this is safe:
- ``cooperative-sticky`` assignment moves a slot in two rebalances: the holder first gives it
  up, and its ``on_revoke`` here returns only after the bind is unbound and its socket closed;
  the slot is assigned to another member in the next round. Scaling out moves only the slots
  that must move; binds that stay are never dropped.
- A killed holder's binds die with its TCP connections; its slots move after
  ``session.timeout.ms`` (:data:`SESSION_TIMEOUT_MS`). A holder that loses the coordinator
  for that long gets ``on_lost`` and closes its binds before the others may have the slots.
- A frozen holder (SIGSTOP, a VM pause) keeps its sockets while its slots move: the SMSC's
  own limit then refuses the new holder's bind, which retries with back-off until the SMSC
  times the frozen bind out (enquire_link). docs/deploy.md#bind-leases says so.

A slot topic with more partitions than the allowance (the allowance was lowered) leaves the
extra slots unused; a lower allowance takes effect without recreating the topic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Final, Protocol

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget

__all__ = ["SESSION_TIMEOUT_MS", "SLOT_TOPIC_PREFIX", "BindSlots", "SlotListener"]

log = logging.getLogger("smsflow.sender.bind_slots")

SLOT_TOPIC_PREFIX: Final = "sms.bind-slots."
#: The broker's smallest allowed session timeout (group.min.session.timeout.ms): a killed
#: holder's slots move this long after its last heartbeat.
SESSION_TIMEOUT_MS: Final = 6000
_POLL_S: Final = 0.2
_ADMIN_TIMEOUT_S: Final = 30.0


class SlotListener(Protocol):
    def gained(self, smsc_id: str, slot: int) -> None:
        """Open the bind of this slot."""

    def lost(self, smsc_id: str, slot: int) -> None:
        """Close the bind of this slot; return only once it is unbound and closed."""


class BindSlots:
    """The slot leases of one sender process (a consumer in the slot group, polled by its
    own thread, which is also where the listener's callbacks run)."""

    def __init__(self, bootstrap: KafkaTarget, group_id: str, topic_prefix: str,
                 listener: SlotListener, *, replication_factor: int = 1,
                 session_timeout_ms: int = SESSION_TIMEOUT_MS) -> None:
        self._bootstrap = bootstrap
        self._prefix = f"{topic_prefix}{SLOT_TOPIC_PREFIX}"
        self._listener = listener
        self._replication_factor = replication_factor
        self._consumer = Consumer({
            **client_config(bootstrap),
            "group.id": group_id,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 6),
            "enable.auto.commit": False,
        })
        self._lock = threading.Lock()
        self._allowance: dict[str, int] = {}
        self._held: set[tuple[str, int]] = set()
        self._wanted: tuple[str, ...] = ()  # slot topics to subscribe to (set by follow())
        self._subscribed: tuple[str, ...] = ()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender-bind-slots", daemon=True)

    def topic(self, smsc_id: str) -> str:
        return f"{self._prefix}{smsc_id}"

    @property
    def held(self) -> set[tuple[str, int]]:
        with self._lock:
            return set(self._held)

    def follow(self, allowances: Mapping[str, int]) -> None:
        """Compete for the slots of these SMSCs (``smsc_id`` → allowed binds): create or grow
        their slot topics, then (re)subscribe. Call again when SMSCs are added."""
        self._ensure_topics(allowances)
        with self._lock:
            self._allowance.update(allowances)
            self._wanted = tuple(sorted(self.topic(smsc_id) for smsc_id in self._allowance))
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        """Leave the group (after closing every held bind, so the slots move at once)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._consumer.close()  # runs on_revoke for what is still held

    # ------------------------------------------------------------------ group callbacks

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                wanted = self._wanted
            if wanted != self._subscribed:  # the consumer is only ever used on this thread
                self._subscribed = wanted
                self._consumer.subscribe(list(wanted), on_assign=self._on_assign,
                                         on_revoke=self._on_revoke, on_lost=self._on_revoke)
            # Serves rebalances (the callbacks below); the slot topics hold no records.
            self._consumer.poll(_POLL_S)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            smsc_id = tp.topic.removeprefix(self._prefix)
            with self._lock:
                allowed = self._allowance.get(smsc_id, 0)
            if tp.partition >= allowed:
                log.info("slot %d of %s is beyond its allowance of %d: not binding",
                         tp.partition, smsc_id, allowed)
                continue
            with self._lock:
                self._held.add((smsc_id, tp.partition))
            self._listener.gained(smsc_id, tp.partition)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic.removeprefix(self._prefix), tp.partition)
            with self._lock:
                if key not in self._held:
                    continue
                self._held.discard(key)
            self._listener.lost(*key)

    # ------------------------------------------------------------------ topics

    def _ensure_topics(self, allowances: Mapping[str, int]) -> None:
        admin = AdminClient(client_config(self._bootstrap))
        existing = admin.list_topics(timeout=_ADMIN_TIMEOUT_S).topics
        create = [
            NewTopic(self.topic(smsc_id), num_partitions=allowed,
                     replication_factor=self._replication_factor,
                     config={"retention.ms": "3600000"})
            for smsc_id, allowed in allowances.items() if self.topic(smsc_id) not in existing
        ]
        grow = [
            NewPartitions(self.topic(smsc_id), allowed)
            for smsc_id, allowed in allowances.items()
            if (found := existing.get(self.topic(smsc_id))) is not None
            and len(found.partitions) < allowed
        ]
        futures = {**(admin.create_topics(create) if create else {}),
                   **(admin.create_partitions(grow) if grow else {})}
        for topic, future in futures.items():
            try:
                future.result(_ADMIN_TIMEOUT_S)
            except KafkaException as exc:
                # Another replica created or grew it first: fine if it is big enough now.
                found = admin.list_topics(topic, timeout=_ADMIN_TIMEOUT_S).topics.get(topic)
                wanted = allowances[topic.removeprefix(self._prefix)]
                if found is None or found.error is not None or len(found.partitions) < wanted:
                    raise RuntimeError(f"bind slot topic {topic}: {exc}") from exc
        # Subscribe only once every broker's metadata has them (a subscription to a topic not
        # yet known waits for the next metadata refresh, minutes by default).
        deadline = time.monotonic() + _ADMIN_TIMEOUT_S
        names = {self.topic(smsc_id) for smsc_id in allowances}
        while time.monotonic() < deadline:
            known = admin.list_topics(timeout=_ADMIN_TIMEOUT_S).topics
            if all(name in known and known[name].error is None for name in names):
                return
            time.sleep(0.1)
        raise RuntimeError(f"bind slot topics {sorted(names)} not visible after creation")
