"""Helpers for tests that talk to the SMSC simulator over real TCP with smpplib."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions

from connectors.smsc_sim import SimulatorThread

PASSWORD = "pw-uk"


def base_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "seed": 7,
        "accounts": [
            {"system_id": "smsc-uk", "password": PASSWORD},
            {"system_id": "smsc-de", "password": "pw-de", "bind_types": ["transmitter"]},
        ],
        "profiles": {
            "default": {"receipt_delay_ms": 20, "delivery_ratio": 1.0},
        },
    }
    config.update(overrides)
    return config


class Esme:
    """A blocking smpplib client that records what it receives."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.client = smpplib.client.Client(
            "127.0.0.1", port, timeout=timeout, allow_unknown_opt_params=True
        )
        self.resps: list[Any] = []
        self.errors: list[Any] = []
        self.receipts: list[Any] = []
        self.ack_status = 0
        self.client.set_message_sent_handler(self._on_sent)
        self.client.set_message_received_handler(self._on_deliver)
        # The default handler raises inside read_once(); record error PDUs instead.
        self.client.set_error_pdu_handler(self._on_error)

    def _on_sent(self, pdu: Any, **_: Any) -> None:
        self.resps.append(pdu)

    def _on_error(self, pdu: Any) -> None:
        self.errors.append(pdu)

    def _on_deliver(self, pdu: Any, **_: Any) -> int:
        self.receipts.append(pdu)
        return self.ack_status

    def connect(self) -> Esme:
        self.client.connect()
        self.client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def bind(self, kind: str = "transceiver", system_id: str = "smsc-uk",
             password: str = PASSWORD) -> Any:
        return getattr(self.client, f"bind_{kind}")(system_id=system_id, password=password)

    def submit(self, destination: str = "447700900123", text: bytes = b"hello world",
               registered_delivery: int = 1, source: str = "SMSFLOW") -> int:
        pdu = self.client.send_message(
            source_addr_ton=5,
            source_addr_npi=0,
            source_addr=source,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=destination,
            short_message=text,
            registered_delivery=registered_delivery,
        )
        return int(pdu.sequence)

    def read_until(self, cond: Callable[[], bool], max_pdus: int = 10_000) -> None:
        """Read (and auto-ack deliver_sm) until ``cond()``; each read times out after 5 s."""
        for _ in range(max_pdus):
            if cond():
                return
            self.client.read_once(auto_send_enquire_link=False)
        raise AssertionError("condition not met")

    def expect_closed(self) -> None:
        """The server closed the connection: the next read fails."""
        with pytest.raises(smpplib.exceptions.ConnectionError):
            self.client.read_pdu()

    def close(self) -> None:
        sock = self.client._socket
        if sock is not None:
            sock.close()
            self.client._socket = None
        self.client.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimulatorThread]]:
    started: list[SimulatorThread] = []

    def factory(config: dict[str, Any] | None = None) -> SimulatorThread:
        sim = SimulatorThread(config if config is not None else base_config()).start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(sim_factory: Callable[..., SimulatorThread]) -> SimulatorThread:
    return sim_factory()


@pytest.fixture
def esme_factory() -> Iterator[Callable[[int], Esme]]:
    """Connected :class:`Esme` clients, closed at teardown."""
    clients: list[Esme] = []

    def factory(port: int) -> Esme:
        esme = Esme(port).connect()
        clients.append(esme)
        return esme

    yield factory
    for esme in clients:
        esme.close()
