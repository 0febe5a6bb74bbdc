"""Timers over a faust table's keys: "look at key K again at time T", delivered through Kafka.

faust forbids table writes outside stream iteration, and an action taken by a timer (emit
EXPIRED, dead-letter a receipt, forget a done marker) must be as crash-safe as any other
record. So the timer does not act: it sends a small *command* (key = the table key, empty
value) to an internal topic co-partitioned with the table's source topic. The agent consumes
that topic with its other inputs, re-reads the entry and applies the pure ``on_timer`` rule; a
stale or duplicated command finds the entry not due (or gone) and does nothing. Commands are
keyed like the source records, so faust's partitioner puts each one in the partition that owns
the key; a worker that lost the partition meanwhile only sends a harmless stale command.

The index is an in-memory :class:`~smsflow.domain.tracking.TimerWheel`, local to the worker.
It is rebuilt from the table after every assignment (once recovery is over), because the
table, not the wheel, is the durable state: every entry carries its own ``due_ms``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import faust

from pipeline.outputs import OutputTopic
from smsflow.domain.tracking import TimerWheel

log = logging.getLogger(__name__)

#: A timer commands at most this many keys per tick, so a backlog cannot starve the loop.
MAX_COMMANDS_PER_TICK = 2_000


class KeyTimers:
    """Timer index of one table; ``run()`` sends due keys as commands to ``command_topic``.

    ``due_of(value)`` reads the due time (epoch ms) out of a stored value, ``None`` when the
    value needs no timer.
    """

    def __init__(
        self,
        app: faust.App,
        *,
        name: str,
        table: faust.types.TableT[Any, Any],
        command_topic: OutputTopic,
        due_of: Callable[[bytes], int | None],
        tick_ms: int = 1_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self.name = name
        self._table = table
        self._command_topic = command_topic
        self._due_of = due_of
        self._tick_ms = tick_ms
        self._clock = clock
        self._wheel = TimerWheel(tick_ms=tick_ms, now_ms=self._now_ms())
        self._rebuild_pending = True
        self.commands_sent = 0
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
            for key in due:
                await self._command_topic.send(key=key.encode(), value=b"")
            sent += len(due)
            if not self._wheel.behind(now_ms):
                break
        self.commands_sent += sent
        return sent
