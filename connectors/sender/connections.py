"""The sender's binds to every configured SMSC: one pool and dispatcher per SMSC, and with bind
leases (``SMSFLOW_SENDER_BIND_LEASES``) the slots that decide which binds this process may hold
and the directory that says where to pass messages for an SMSC it holds none of.

Without leases every process opens ``Smsc.binds`` binds (one sender process per SMSC account,
the single-node layout). With leases ``Smsc.binds`` is the account's allowance shared by all
sender replicas (connectors/sender/bind_slots.py, connectors/sender/relay.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from connectors.sender.bind_pool import SmscBinds
from connectors.sender.bind_slots import BindSlots
from connectors.sender.dispatch import SmscDispatcher
from connectors.sender.metrics import BindView
from connectors.sender.relay import BindDirectory, pick_partition
from connectors.smpp.client import SmppClient
from connectors.smpp.models import SmppClientConfig
from smsflow.config.models import SMPP_PASSWORD_MAX, Smsc
from smsflow.config.secrets import resolve
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import SMSC_BINDS, topic_name

__all__ = ["SmscConnections"]

log = logging.getLogger("smsflow.sender.connections")

#: Builds one SMSC's dispatcher (the service wires its callbacks).
DispatcherFactory = Callable[[Smsc], SmscDispatcher[Any]]
#: Builds one bind's client, feeding the given dispatcher.
ClientFactory = Callable[[SmppClientConfig, SmscDispatcher[Any]], SmppClient]


class SmscConnections:
    def __init__(self, settings: Settings, new_dispatcher: DispatcherFactory,
                 new_client: ClientFactory, *, instance: str) -> None:
        self.pools: dict[str, SmscBinds] = {}
        self._new_dispatcher = new_dispatcher
        self._new_client = new_client
        self._slots: BindSlots | None = None
        self._directory: BindDirectory | None = None
        if settings.sender_bind_leases:
            self._slots = BindSlots(
                kafka_connection(settings), f"{settings.app_id}-bind-slots", settings.topic_prefix,
                self, replication_factor=settings.replication_factor)
            self._directory = BindDirectory(
                kafka_connection(settings), topic_name(settings, SMSC_BINDS), instance,
                f"{settings.app_id}-bind-directory-{instance}")

    @property
    def leased(self) -> bool:
        return self._slots is not None

    def add(self, smscs: Iterable[Smsc]) -> None:
        """Open (or, with leases, compete for) the binds of SMSCs not connected yet."""
        added = [smsc for smsc in smscs if smsc.id not in self.pools]
        for smsc in added:
            # The configuration holds a reference; the value lives only in this process and is
            # read here, at bind time (docs/configuration.md#secrets).
            password = resolve(smsc.password, what=f"SMSC {smsc.id} password",
                               max_length=SMPP_PASSWORD_MAX).get_secret_value()
            dispatcher = self._new_dispatcher(smsc)
            pool = SmscBinds(smsc, password, dispatcher, self._client_factory(dispatcher))
            self.pools[smsc.id] = pool
            dispatcher.start()
            if self._slots is None:
                for slot in range(smsc.binds):
                    pool.open(slot)
        if self._slots is not None and added:
            if self._directory is not None:
                self._directory.start()
            self._slots.follow({smsc.id: smsc.binds for smsc in added})

    def _client_factory(self, dispatcher: SmscDispatcher[Any]) -> Callable[[SmppClientConfig],
                                                                         SmppClient]:
        def new_client(config: SmppClientConfig) -> SmppClient:
            return self._new_client(config, dispatcher)
        return new_client

    # ------------------------------------------------------------------ SlotListener

    def gained(self, smsc_id: str, slot: int) -> None:
        self.pools[smsc_id].open(slot)

    def lost(self, smsc_id: str, slot: int) -> None:
        self.pools[smsc_id].close(slot)

    # ------------------------------------------------------------------ queries

    def views(self) -> list[BindView]:
        """State, window and counters of every open bind (read at scrape time, any thread)."""
        return [BindView.of(smsc_id, client)
                for smsc_id, pool in list(self.pools.items()) for client in pool.clients]

    def relay_partition(self, smsc_id: str, message_id: str) -> int | None:
        """With leases, while this process holds no bind slot of ``smsc_id``: the
        sms.throttled partition of a sender that does, for this message. None otherwise
        (no leases, a slot held here, or nobody holds one: the parts wait for a bind)."""
        if self._directory is None or self.pools[smsc_id].slots:
            return None
        partitions = self._directory.holder_partitions(smsc_id, int(time.time() * 1000))
        return pick_partition(partitions, message_id) if partitions else None

    def close(self) -> None:
        """Unbind everything, then leave the slot group (so the slots move at once)."""
        for pool in self.pools.values():
            pool.close_all()
        if self._slots is not None:
            self._slots.stop()
        if self._directory is not None:
            self._directory.stop()
        for pool in self.pools.values():
            pool.dispatcher.stop()  # what is left is replayed from the uncommitted offsets
