"""The binds this sender process holds to one SMSC, opened and closed one slot at a time.

Without bind leases the pool opens ``Smsc.binds`` slots at start and keeps them. With leases
(connectors/sender/bind_slots.py) it opens a slot when the process is given it and closes it,
unbind included, before the slot may go to another process. The SMSC's dispatcher always serves
exactly the open binds; parts are prepared from the account's settings, so they can be queued
while the pool holds no bind at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from connectors.sender.dispatch import SmscDispatcher
from connectors.smpp.client import PreparedSubmit, SmppClient, SubmitOptions
from connectors.smpp.client import prepare_submit as prepare_pdus
from connectors.smpp.models import SmppClientConfig
from connectors.smpp.session_state import ResultCallback
from smsflow.config.models import Smsc
from smsflow.domain.encoding import SegmentPlan

__all__ = ["ClientFactory", "SmscBinds"]

log = logging.getLogger("smsflow.sender.binds")

#: Builds the client of one bind from its settings (the service wires its callbacks).
ClientFactory = Callable[[SmppClientConfig], SmppClient]


class SmscBinds:
    def __init__(self, smsc: Smsc, password: str, dispatcher: SmscDispatcher[Any],
                 new_client: ClientFactory) -> None:
        self.smsc = smsc
        self.dispatcher = dispatcher
        self._template = SmppClientConfig(
            host=smsc.host, port=smsc.port, system_id=smsc.system_id, password=password,
            system_type=smsc.system_type, name=f"{smsc.id}#template", window_size=smsc.window,
        )
        self._new_client = new_client
        self._lock = threading.Lock()
        self._clients: dict[int, SmppClient] = {}

    @property
    def clients(self) -> list[SmppClient]:
        """The open binds (any thread; a copy)."""
        with self._lock:
            return list(self._clients.values())

    @property
    def slots(self) -> list[int]:
        with self._lock:
            return sorted(self._clients)

    def open(self, slot: int) -> None:
        """Bind slot ``slot`` (``<smsc>#<slot>``); the client reconnects on its own until
        :meth:`close`."""
        with self._lock:
            if slot in self._clients:
                return
            client = self._new_client(replace(self._template, name=f"{self.smsc.id}#{slot}"))
            self._clients[slot] = client
            self.dispatcher.set_clients(list(self._clients.values()))
        client.start()
        log.info("%s: bind slot %d opened", self.smsc.id, slot)

    def close(self, slot: int, timeout: float | None = None) -> None:
        """Stop feeding the slot's bind, let its window finish (what is left is reported
        connection_lost and retried on another bind), unbind. Returns once the socket is
        closed: only then may another process bind in this slot."""
        with self._lock:
            client = self._clients.pop(slot, None)
            if client is None:
                return
            self.dispatcher.set_clients(list(self._clients.values()))
        self.dispatcher.wake()
        client.close(timeout)
        log.info("%s: bind slot %d closed", self.smsc.id, slot)

    def close_all(self) -> None:
        for slot in self.slots:
            self.close(slot)

    def prepare(self, reference: str, plan: SegmentPlan, *, source_addr: str,
                destination_addr: str, options: SubmitOptions,
                callback: ResultCallback) -> PreparedSubmit:
        return prepare_pdus(self._template, reference, plan, source_addr=source_addr,
                            destination_addr=destination_addr, options=options,
                            callback=callback)
