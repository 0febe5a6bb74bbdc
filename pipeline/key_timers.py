"""Timers over a faust table's keys: "look at key K again at time T", delivered through Kafka.

faust forbids table writes outside stream iteration, and an action taken by a timer (emit
EXPIRED, dead-letter a receipt, forget a done marker) must be as crash-safe as any other
record. So the timer does not act: it sends a small *command* (key = the table key, empty
value) to an internal topic co-partitioned with the table's source topic. The agent consumes
that topic with its other inputs, re-reads the entry and applies the pure ``on_timer`` rule; a
stale or duplicated command finds the entry not due (or gone) and does nothing.

Commands go in batches: one record per partition and tick carries every key due there
(:data:`KEYS_MAGIC`, then each key length-prefixed), in the partition Kafka's default
partitioner (murmur2, as the source records' producers use) gives the key, so it is the
partition that owns the key's entry. Why: every completed part and message leaves a done
marker that is forgotten an hour later, so a steady flow sent 2.25 commands per message, each a
record and a faust event of its own: +46 % records and +19 % worker CPU per message once the
first markers expired (docs/performance.md#forgetting-done-markers), and at most 2,000 keys a
second per table. While the partition count is not known yet, a key goes alone, keyed (the
older format, still read: :func:`command_keys`). A worker that lost the partition meanwhile
only sends harmless stale commands.

The index is an in-memory :class:`~smsflow.domain.tracking.TimerWheel`, local to the worker.
It is rebuilt from the table after every assignment (once recovery is over), because the
table, not the wheel, is the durable state: every entry carries its own ``due_ms``.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, cast

import faust

from pipeline.outputs import OutputTopic
from smsflow import length_prefixed
from smsflow.domain.tracking import TimerWheel
from smsflow.murmur2 import partition_of

log = logging.getLogger(__name__)

#: A timer commands at most this many keys per tick, so a backlog cannot starve the loop (at
#: the 1 s tick, 10x what the target rate of 2,640 messages/s expires).
MAX_COMMANDS_PER_TICK = 30_000
#: Keys per command record: the agent handles a record's keys in one go, so this bounds how
#: long one command holds its loop.
KEYS_PER_COMMAND = 500
#: First bytes of a batch command's value (an old single-key command's value is empty).
KEYS_MAGIC = b"\xffKT1"


def pack_keys(keys: list[bytes]) -> bytes:
    """A batch command's value: the keys, each length-prefixed."""
    return length_prefixed.pack(KEYS_MAGIC, keys)


def command_keys(key: bytes | None, value: bytes | None) -> list[str]:
    """The table keys a command record names: a batch's, or the record's own key.
    Raises ``ValueError`` for a batch cut short."""
    if not value or not value.startswith(KEYS_MAGIC):
        return [(key or b"").decode()]
    return [k.decode() for k in length_prefixed.unpack(value, KEYS_MAGIC, "timer command batch")]


class KeyTimers:
    """Timer index of one table; ``run()`` sends due keys as commands to ``command_topic``.

    ``due_of(value)`` reads the due time (epoch ms) out of a stored value, ``None`` when the
    value needs no timer. ``partitions()`` is the command topic's partition count as the
    worker knows it (0 while unknown: commands then go one key a record).
    """

    def __init__(
        self,
        app: faust.App,
        *,
        name: str,
        table: faust.types.TableT[Any, Any],
        command_topic: OutputTopic,
        due_of: Callable[[bytes], int | None],
        partitions: Callable[[], int] = lambda: 0,
        tick_ms: int = 1_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self.name = name
        self._table = table
        self._command_topic = command_topic
        self._due_of = due_of
        self._partitions = partitions
        self._tick_ms = tick_ms
        self._clock = clock
        self._wheel = TimerWheel(tick_ms=tick_ms, now_ms=self._now_ms())
        self._rebuild_pending = True
        #: Keys commanded, and the records that carried them.
        self.commands_sent = 0
        self.command_records = 0
        # mode types the handler with a mypy_extensions NamedArg that bound methods never match.
        app.on_partitions_assigned.connect(cast(Any, self._on_assigned))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def __len__(self) -> int:
        return len(self._wheel)

    def schedule(self, key: str, due_ms: int) -> None:
        self._wheel.schedule(key, due_ms)

    def cancel(self, key: str) -> None:
        self._wheel.cancel(key)

    def _on_assigned(self, _sender: Any, *args: Any, **_: Any) -> None:
        self._rebuild_pending = True

    def _ready(self) -> bool:
        return self._app.flow_control.is_active() and not getattr(self._app, "in_recovery", False)

    def rebuild(self) -> int:
        """Index every entry of the local table (after recovery); returns the entry count."""
        entries: list[tuple[str, int]] = []
        for key, value in list(self._table.items()):
            if value is None:
                continue
            due = self._due_of(value)
            if due is not None:
                entries.append((key, due))
        self._wheel = TimerWheel.from_entries(entries, now_ms=self._now_ms(),
                                              tick_ms=self._tick_ms)
        self._rebuild_pending = False
        log.info("%s: timer index rebuilt from the table: %d keys", self.name, len(entries))
        return len(entries)

    async def tick(self) -> int:
        """Send a command for every key due now (bounded); returns how many were sent."""
        if self._rebuild_pending:
            if not self._ready():
                return 0
            self.rebuild()
        now_ms = self._now_ms()
        sent = 0
        while sent < MAX_COMMANDS_PER_TICK:
            due = self._wheel.pop_due(now_ms, limit=MAX_COMMANDS_PER_TICK - sent)
            await self._command(due)
            sent += len(due)
            if not self._wheel.behind(now_ms):
                break
        self.commands_sent += sent
        return sent

    async def _command(self, keys: list[str]) -> None:
        """Send commands for ``keys``: one record per partition (and per
        :data:`KEYS_PER_COMMAND` keys) once the partition count is known."""
        partitions = self._partitions()
        if partitions <= 0:
            for key in keys:
                await self._command_topic.send(key=key.encode(), value=b"")
            self.command_records += len(keys)
            return
        by_partition: defaultdict[int, list[bytes]] = defaultdict(list)
        for key in keys:
            encoded = key.encode()
            by_partition[partition_of(encoded, partitions)].append(encoded)
        for partition, encoded_keys in by_partition.items():
            for start in range(0, len(encoded_keys), KEYS_PER_COMMAND):
                await self._command_topic.send(
                    value=pack_keys(encoded_keys[start : start + KEYS_PER_COMMAND]),
                    partition=partition,
                )
                self.command_records += 1
