"""The SMSC simulator over real TCP, driven by smpplib 2.2.4 (and raw sockets for edge cases)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import smpplib.exceptions
import smpplib.smpp

from connectors.smpp import codec as P
from connectors.smsc_sim import SimulatorThread

from .conftest import PASSWORD, Esme, base_config

pytestmark = pytest.mark.smpp

EsmeFactory = Callable[[int], Esme]
SimFactory = Callable[..., SimulatorThread]

RECEIPT_RE = re.compile(
    rb"^id:(?P<id>\S+) sub:001 dlvrd:(?P<dlvrd>\d{3}) submit date:(?P<sd>\d{10}) "
    rb"done date:(?P<dd>\d{10}) stat:(?P<stat>[A-Z]{7}) err:(?P<err>\d{3}) text:(?P<text>.*)$",
    re.DOTALL,
)


# ---------------------------------------------------------------------------------------------
# raw-socket helpers (for things smpplib refuses to send)
# ---------------------------------------------------------------------------------------------


class RawEsme:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.splitter = P.FrameSplitter()
        self.frames: list[bytes] = []

    def send(self, pdu: P.Pdu | bytes) -> None:
        self.sock.sendall(pdu if isinstance(pdu, bytes) else pdu.encode())

    def recv(self) -> P.Pdu | None:
        """Next PDU, or None on EOF."""
        while not self.frames:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.frames.extend(self.splitter.feed(data))
        return P.decode_pdu(self.frames.pop(0))

    def bind(self, system_id: str = "smsc-uk", password: str = "pw-uk") -> P.Pdu:
        self.send(P.Pdu(P.CommandId.BIND_TRANSCEIVER, 0, 1, P.Bind(system_id, password)))
        resp = self.recv()
        assert resp is not None
        return resp

    def close(self) -> None:
        self.sock.close()


def submit_pdu(seq: int, dest: str = "447700900123", rd: int = 0, text: bytes = b"hi") -> P.Pdu:
    return P.Pdu(
        P.CommandId.SUBMIT_SM,
        0,
        seq,
        P.SubmitSm(source_addr="SRC", destination_addr=dest, registered_delivery=rd,
                   short_message=text),
    )


# ---------------------------------------------------------------------------------------------
# bind
# ---------------------------------------------------------------------------------------------


def test_wrong_password_is_refused_and_connection_closed(sim: SimulatorThread,
                                                          esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    with pytest.raises(smpplib.exceptions.PDUError) as info:
        esme.bind(password="nope")
    assert info.value.args[1] == P.Status.ESME_RINVPASWD
    esme.expect_closed()
    stats = sim.stats
    assert stats.bind_failures == 1
    assert stats.binds == 0


def test_unknown_system_id_is_refused(sim: SimulatorThread, esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    with pytest.raises(smpplib.exceptions.PDUError) as info:
        esme.bind(system_id="nobody")
    assert info.value.args[1] == P.Status.ESME_RINVSYSID
    esme.expect_closed()


def test_disallowed_bind_type_is_refused(sim: SimulatorThread, esme_factory: EsmeFactory) -> None:
    # smsc-de may only bind as transmitter.
    esme = esme_factory(sim.port)
    with pytest.raises(smpplib.exceptions.PDUError) as info:
        esme.bind("receiver", system_id="smsc-de", password="pw-de")
    assert info.value.args[1] == P.Status.ESME_RBINDFAIL
    ok = esme_factory(sim.port)
    assert ok.bind("transmitter", system_id="smsc-de", password="pw-de").status == 0


def test_bind_over_the_account_limit_is_refused_until_one_ends(
        sim_factory: Callable[..., SimulatorThread], esme_factory: EsmeFactory) -> None:
    sim = sim_factory(base_config(accounts=[
        {"system_id": "smsc-uk", "password": PASSWORD, "max_binds": 2}]))
    first, second = esme_factory(sim.port), esme_factory(sim.port)
    assert first.bind().status == 0 and second.bind().status == 0
    assert sim.account_binds("smsc-uk") == 2
    third = esme_factory(sim.port)
    with pytest.raises(smpplib.exceptions.PDUError) as info:
        third.bind()
    assert info.value.args[1] == P.Status.ESME_RBINDFAIL
    third.expect_closed()
    first.close()
    retry = esme_factory(sim.port)
    deadline = time.monotonic() + 5
    while True:  # the simulator sees the first session end asynchronously
        try:
            assert retry.bind().status == 0
            break
        except smpplib.exceptions.PDUError:
            assert time.monotonic() < deadline, "the freed bind slot was never usable"
            retry = esme_factory(sim.port)
            time.sleep(0.05)
    assert sim.stats.peak_account_binds == 2


@pytest.mark.parametrize("kind", ["transmitter", "receiver", "transceiver"])
def test_bind_resp_carries_smsc_system_id(sim: SimulatorThread, esme_factory: EsmeFactory,
                                          kind: str) -> None:
    resp = esme_factory(sim.port).bind(kind)
    assert resp.command == f"bind_{kind}_resp"
    assert resp.status == 0
    assert resp.system_id == b"SMSCSIM"
    assert sim.stats.binds == 1


def test_second_bind_on_same_session_is_already_bound(sim: SimulatorThread) -> None:
    raw = RawEsme(sim.port)
    try:
        assert raw.bind().command_status == 0
        resp = raw.bind()
        assert resp.command_id == P.CommandId.BIND_TRANSCEIVER_RESP
        assert resp.command_status == P.Status.ESME_RALYBND
    finally:
        raw.close()


# ---------------------------------------------------------------------------------------------
# submit
# ---------------------------------------------------------------------------------------------


def test_submit_gets_unique_hex_message_ids(sim: SimulatorThread,
                                            esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    esme.bind("transmitter")
    seqs = [esme.submit(registered_delivery=0) for _ in range(20)]
    esme.read_until(lambda: len(esme.resps) == 20)
    assert [r.sequence for r in esme.resps] == seqs
    assert all(r.status == 0 for r in esme.resps)
    ids = [r.message_id for r in esme.resps]
    assert len(set(ids)) == 20
    assert all(re.fullmatch(rb"[0-9a-f]+", i) for i in ids)
    assert sim.stats.submits_ok == 20


def test_decimal_message_ids(sim_factory: SimFactory, esme_factory: EsmeFactory) -> None:
    sim = sim_factory(base_config(message_id_format="dec", message_id_start=999))
    esme = esme_factory(sim.port)
    esme.bind("transmitter")
    esme.submit(registered_delivery=0)
    esme.submit(registered_delivery=0)
    esme.read_until(lambda: len(esme.resps) == 2)
    assert [r.message_id for r in esme.resps] == [b"1000", b"1001"]


def test_submit_before_bind_is_invalid_bind_status(sim: SimulatorThread) -> None:
    raw = RawEsme(sim.port)
    try:
        raw.send(submit_pdu(42))
        resp = raw.recv()
        assert resp is not None
        assert resp.command_id == P.CommandId.SUBMIT_SM_RESP
        assert resp.command_status == P.Status.ESME_RINVBNDSTS
        assert resp.sequence_number == 42
    finally:
        raw.close()


def test_submit_on_receiver_bind_is_invalid_bind_status(sim: SimulatorThread) -> None:
    raw = RawEsme(sim.port)
    try:
        raw.send(P.Pdu(P.CommandId.BIND_RECEIVER, 0, 1, P.Bind("smsc-uk", "pw-uk")))
        bind_resp = raw.recv()
        assert bind_resp is not None and bind_resp.command_status == 0
        raw.send(submit_pdu(2))
        resp = raw.recv()
        assert resp is not None and resp.command_status == P.Status.ESME_RINVBNDSTS
    finally:
        raw.close()


def test_malformed_submit_gets_error_resp(sim: SimulatorThread) -> None:
    raw = RawEsme(sim.port)
    try:
        raw.bind()
        raw.send(P.pack_pdu(P.SUBMIT_SM, 9, b"\x00\x01\x01NO-TERMINATOR"))
        resp = raw.recv()
        assert resp is not None
        assert resp.command_id == P.CommandId.SUBMIT_SM_RESP
        assert resp.sequence_number == 9
        assert resp.command_status == P.Status.ESME_RINVCMDLEN
    finally:
        raw.close()


def test_throttling_above_tps(sim_factory: SimFactory, esme_factory: EsmeFactory) -> None:
    tps = 20
    burst = 10 * tps
    sim = sim_factory(base_config(profiles={"default": {"throttle_tps": tps}}))
    esme = esme_factory(sim.port)
    esme.bind("transmitter")
    for _ in range(burst):
        esme.submit(registered_delivery=0)
    esme.read_until(lambda: len(esme.resps) == burst)
    statuses = [r.status for r in esme.resps]
    ok = statuses.count(0)
    throttled = statuses.count(P.Status.ESME_RTHROTTLED)
    assert ok + throttled == burst
    assert ok >= tps  # the bucket starts full
    assert throttled > 0
    assert all(e.status == P.Status.ESME_RTHROTTLED for e in esme.errors)
    assert sim.stats.throttled == throttled


def test_throttle_ratio_refuses_that_share_of_submits(sim_factory: SimFactory,
                                                      esme_factory: EsmeFactory) -> None:
    sim = sim_factory(base_config(profiles={"default": {"throttle_ratio": 0.3}}))
    esme = esme_factory(sim.port)
    esme.bind("transmitter")
    for _ in range(100):
        esme.submit(registered_delivery=0)
    esme.read_until(lambda: len(esme.resps) == 100)
    statuses = [r.status for r in esme.resps]
    assert statuses.count(P.Status.ESME_RTHROTTLED) == 30  # deterministic, not sampled
    assert statuses[:4] == [0, 0, 0, P.Status.ESME_RTHROTTLED]
    assert statuses.count(0) == 70
    assert sim.stats.throttled == 30


def test_throttle_is_per_profile(sim_factory: SimFactory, esme_factory: EsmeFactory) -> None:
    sim = sim_factory(base_config(profiles={
        "default": {},
        "slow": {"prefixes": ["49"], "throttle_tps": 1},
    }))
    esme = esme_factory(sim.port)
    esme.bind("transmitter")
    for _ in range(10):
        esme.submit(destination="4915100000000", registered_delivery=0)
    for _ in range(10):
        esme.submit(destination="447700900123", registered_delivery=0)
    esme.read_until(lambda: len(esme.resps) == 20)
    de = [r.status for r in esme.resps[:10]]
    uk = [r.status for r in esme.resps[10:]]
    assert de.count(P.Status.ESME_RTHROTTLED) >= 1
    assert uk == [0] * 10


def test_submit_latency_does_not_hold_back_other_pdus(sim_factory: SimFactory,
                                                       esme_factory: EsmeFactory) -> None:
    sim = sim_factory(base_config(profiles={"default": {"submit_latency_ms": 1000}}))
    esme = esme_factory(sim.port)
    esme.bind("transmitter")
    esme.submit(registered_delivery=0)
    esme.client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=esme.client))
    first = esme.client.read_pdu()
    assert first.command == "enquire_link_resp"
    second = esme.client.read_pdu()
    assert second.command == "submit_sm_resp"
    assert second.status == 0


# ---------------------------------------------------------------------------------------------
# receipts
# ---------------------------------------------------------------------------------------------


def _one_receipt(esme: Esme, **submit: Any) -> tuple[Any, Any]:
    esme.submit(**submit)
    esme.read_until(lambda: len(esme.resps) == 1 and len(esme.receipts) == 1)
    return esme.resps[0], esme.receipts[0]


def test_delivered_receipt_text_and_tlvs(sim: SimulatorThread, esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    esme.bind()
    resp, dlr = _one_receipt(esme, text=b"The quick brown fox jumps over the lazy dog",
                             source="SMSFLOW", destination="447700900123")
    assert dlr.esm_class == 0x04
    # Source and destination swapped, with their TON/NPI.
    assert dlr.source_addr == b"447700900123"
    assert (dlr.source_addr_ton, dlr.source_addr_npi) == (1, 1)
    assert dlr.destination_addr == b"SMSFLOW"
    assert (dlr.dest_addr_ton, dlr.dest_addr_npi) == (5, 0)
    m = RECEIPT_RE.match(dlr.short_message)
    assert m is not None, dlr.short_message
    assert m["id"] == resp.message_id
    assert m["dlvrd"] == b"001"
    assert m["stat"] == b"DELIVRD"
    assert m["err"] == b"000"
    assert m["text"] == b"The quick brown fox "
    assert m["sd"] <= m["dd"]
    assert dlr.receipted_message_id == resp.message_id
    assert dlr.message_state == P.MessageState.DELIVERED
    assert dlr.network_error_code == b"\x03\x00\x00"
    stats = sim.wait_for(lambda s: s.receipts_acked == 1)
    assert stats.receipts_sent == 1


def test_failed_receipt_text_and_tlvs(sim_factory: SimFactory, esme_factory: EsmeFactory) -> None:
    sim = sim_factory(base_config(profiles={"default": {
        "receipt_delay_ms": 10,
        "delivery_ratio": 0.0,
        "failure_status": [{"stat": "REJECTD", "err": 42, "weight": 1}],
    }}))
    esme = esme_factory(sim.port)
    esme.bind()
    resp, dlr = _one_receipt(esme)
    m = RECEIPT_RE.match(dlr.short_message)
    assert m is not None
    assert m["id"] == resp.message_id
    assert (m["dlvrd"], m["stat"], m["err"]) == (b"000", b"REJECTD", b"042")
    assert dlr.message_state == P.MessageState.REJECTED
    assert dlr.network_error_code == b"\x03\x00\x2a"
    assert dlr.receipted_message_id == resp.message_id


@pytest.mark.parametrize(
    ("stat", "state"),
    [("UNDELIV", P.MessageState.UNDELIVERABLE), ("EXPIRED", P.MessageState.EXPIRED)],
)
def test_failure_states(sim_factory: SimFactory, esme_factory: EsmeFactory, stat: str,
                        state: int) -> None:
    sim = sim_factory(base_config(profiles={"default": {
        "delivery_ratio": 0.0, "failure_status": [{"stat": stat, "err": 7}],
    }}))
    esme = esme_factory(sim.port)
    esme.bind()
    _, dlr = _one_receipt(esme)
    assert f"stat:{stat} err:007".encode() in dlr.short_message
    assert dlr.message_state == state


def test_no_receipt_when_not_requested(sim: SimulatorThread, esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    esme.bind()
    esme.submit(registered_delivery=0)
    esme.submit(registered_delivery=1)
    esme.read_until(lambda: len(esme.resps) == 2 and len(esme.receipts) >= 1)
    # Receipts are ordered by due time; had the first asked for one it would come first.
    assert esme.receipts[0].receipted_message_id == esme.resps[1].message_id
    assert sim.stats.receipts_scheduled == 1
    assert sim.stats.receipts_not_requested == 1  # what an ESME's no-receipt submits show


def test_failure_only_receipt_skips_delivered(sim: SimulatorThread,
                                              esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    esme.bind()
    esme.submit(registered_delivery=2)  # failure-only; delivery_ratio is 1 -> no receipt
    esme.read_until(lambda: len(esme.resps) == 1)
    assert sim.stats.receipts_scheduled == 0
    assert sim.stats.receipts_not_requested == 0  # asked for one, on failure only


@pytest.mark.parametrize("fmt", ["text", "tlv"])
def test_receipt_format(sim_factory: SimFactory, esme_factory: EsmeFactory, fmt: str) -> None:
    sim = sim_factory(base_config(receipt_format=fmt))
    esme = esme_factory(sim.port)
    esme.bind()
    resp, dlr = _one_receipt(esme)
    if fmt == "text":
        assert RECEIPT_RE.match(dlr.short_message)
        assert dlr.receipted_message_id is None
        assert dlr.message_state is None
    else:
        assert dlr.short_message in (b"", None)
        assert dlr.receipted_message_id == resp.message_id
        assert dlr.message_state == P.MessageState.DELIVERED


def test_receipts_reach_a_separately_bound_receiver(sim: SimulatorThread,
                                                    esme_factory: EsmeFactory) -> None:
    tx = esme_factory(sim.port)
    rx = esme_factory(sim.port)
    tx.bind("transmitter")
    rx.bind("receiver")
    tx.submit()
    tx.read_until(lambda: len(tx.resps) == 1)
    rx.read_until(lambda: len(rx.receipts) == 1)
    assert rx.receipts[0].receipted_message_id == tx.resps[0].message_id
    assert sim.wait_for(lambda s: s.receipts_acked == 1).receipts_sent == 1


def test_receipts_wait_for_a_receiver_to_bind(sim: SimulatorThread,
                                              esme_factory: EsmeFactory) -> None:
    tx = esme_factory(sim.port)
    tx.bind("transmitter")
    tx.submit()
    tx.read_until(lambda: len(tx.resps) == 1)
    sim.wait_for(lambda s: s.receipts_pending == 1 and s.receipts_scheduled == 1)
    assert sim.stats.receipts_sent == 0
    rx = esme_factory(sim.port)
    rx.bind("receiver")
    rx.read_until(lambda: len(rx.receipts) == 1)
    assert rx.receipts[0].receipted_message_id == tx.resps[0].message_id


def test_receipts_round_robin_across_binds(sim: SimulatorThread,
                                           esme_factory: EsmeFactory) -> None:
    a = esme_factory(sim.port)
    b = esme_factory(sim.port)
    a.bind()
    b.bind()
    n = 10
    for _ in range(n):
        a.submit()
    a.read_until(lambda: len(a.resps) == n)
    sim.wait_for(lambda s: s.receipts_sent == n)
    # All submits went through `a`, yet the receipts alternate between the two binds.
    a.read_until(lambda: len(a.receipts) == n // 2)
    b.read_until(lambda: len(b.receipts) == n // 2)
    ids = {r.message_id for r in a.resps}
    assert {r.receipted_message_id for r in a.receipts + b.receipts} == ids


def test_unacked_receipt_is_redelivered_after_reconnect(sim: SimulatorThread,
                                                        esme_factory: EsmeFactory) -> None:
    first = esme_factory(sim.port)
    first.bind()
    first.submit()
    # Read raw PDUs, so the receipt is not acknowledged.
    pdus = [first.client.read_pdu(), first.client.read_pdu()]
    assert [p.command for p in pdus] == ["submit_sm_resp", "deliver_sm"]
    first.close()
    sim.wait_for(lambda s: s.receipts_requeued == 1)
    second = esme_factory(sim.port)
    second.bind("receiver")
    second.read_until(lambda: len(second.receipts) == 1)
    assert second.receipts[0].receipted_message_id == pdus[0].message_id
    sim.wait_for(lambda s: s.receipts_acked == 1)


def test_unacked_receipts_are_a_gauge(sim: SimulatorThread, esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    esme.bind()
    esme.submit()
    pdus = [esme.client.read_pdu(), esme.client.read_pdu()]  # raw: the receipt is not answered
    assert [p.command for p in pdus] == ["submit_sm_resp", "deliver_sm"]
    assert sim.stats.receipts_unacked == 1
    esme.close()
    stats = sim.wait_for(lambda s: s.receipts_requeued == 1)
    assert stats.receipts_unacked == 0


def test_receipts_written_hook_sees_unanswered_receipts(sim: SimulatorThread,
                                                        esme_factory: EsmeFactory) -> None:
    seen: list[int] = []
    sim.call(setattr, sim.sim, "receipts_written_hook", seen.append)
    esme = esme_factory(sim.port)
    esme.bind()
    esme.submit()
    pdus = [esme.client.read_pdu(), esme.client.read_pdu()]  # raw: the receipt is not answered
    assert [p.command for p in pdus] == ["submit_sm_resp", "deliver_sm"]
    assert sim.call(lambda: list(seen)) == [1]  # called once the deliver_sm was written


def test_duplicate_submits_counted_per_destination_and_message(
    sim_factory: SimFactory, esme_factory: EsmeFactory
) -> None:
    sim = sim_factory(base_config(count_duplicate_submits=True))
    esme = esme_factory(sim.port)
    esme.bind()
    esme.submit("447700900001", b"part one")
    esme.submit("447700900002", b"part one")  # another subscriber: not a duplicate
    esme.submit("447700900001", b"part two")  # another part: not a duplicate
    esme.submit("447700900001", b"part one")  # the same part again
    esme.read_until(lambda: len(esme.resps) == 4)
    stats = sim.wait_for(lambda s: s.submits_ok == 4)
    assert stats.duplicate_submits == 1


def test_duplicate_receipt_ratio_sends_that_share_twice(sim_factory: SimFactory,
                                                        esme_factory: EsmeFactory) -> None:
    sim = sim_factory(base_config(duplicate_receipt_ratio=0.5, duplicate_receipt_delay_ms=5))
    esme = esme_factory(sim.port)
    esme.bind("transceiver")
    for _ in range(4):
        esme.submit(registered_delivery=1)
    esme.read_until(lambda: len(esme.receipts) == 6)
    ids = [r.receipted_message_id for r in esme.receipts]
    assert len(set(ids)) == 4 and len(ids) == 6  # two of the four receipts came twice
    assert sim.stats.receipts_duplicated == 2


def test_negative_deliver_sm_resp_is_retried(sim_factory: SimFactory,
                                             esme_factory: EsmeFactory) -> None:
    sim = sim_factory(base_config(receipt_retry_ms=10))
    esme = esme_factory(sim.port)
    esme.bind()
    esme.ack_status = P.Status.ESME_RX_T_APPN
    esme.submit()
    esme.read_until(lambda: len(esme.receipts) == 1)
    esme.ack_status = 0
    esme.read_until(lambda: len(esme.receipts) == 2)
    assert esme.receipts[0].receipted_message_id == esme.receipts[1].receipted_message_id
    stats = sim.wait_for(lambda s: s.receipts_acked == 1)
    assert stats.receipts_nacked == 1


def test_set_profile_at_runtime(sim: SimulatorThread, esme_factory: EsmeFactory) -> None:
    sim.set_profile("default", delivery_ratio=0.0,
                    failure_status=[{"stat": "EXPIRED", "err": 3}])
    esme = esme_factory(sim.port)
    esme.bind()
    _, dlr = _one_receipt(esme)
    assert b"stat:EXPIRED err:003" in dlr.short_message
    with pytest.raises(KeyError):
        sim.set_profile("nope", delivery_ratio=1.0)
    with pytest.raises(ValueError, match="delivery_ratio"):
        sim.set_profile("default", delivery_ratio=2.0)


def test_prefix_routing_longest_match(sim_factory: SimFactory, esme_factory: EsmeFactory) -> None:
    sim = sim_factory(base_config(profiles={
        "default": {"delivery_ratio": 1.0},
        "uk": {"prefixes": ["44"], "delivery_ratio": 1.0},
        "uk-mobile": {"prefixes": ["447"], "delivery_ratio": 0.0,
                      "failure_status": [{"stat": "UNDELIV", "err": 11}]},
    }))
    assert sim.call(sim.sim.profile_for, "+447700900123") == "uk-mobile"
    assert sim.call(sim.sim.profile_for, "442071234567") == "uk"
    assert sim.call(sim.sim.profile_for, "15551234567") == "default"
    sim.set_profile("uk", prefixes=["44", "353"])
    assert sim.call(sim.sim.profile_for, "353861234567") == "uk"
    assert sim.call(sim.sim.profile_for, "447700900123") == "uk-mobile"
    with pytest.raises(ValueError, match="uk-mobile"):
        sim.set_profile("uk", prefixes=["447"])
    esme = esme_factory(sim.port)
    esme.bind()
    _, dlr = _one_receipt(esme, destination="447700900123")
    assert b"stat:UNDELIV err:011" in dlr.short_message


# ---------------------------------------------------------------------------------------------
# session control
# ---------------------------------------------------------------------------------------------


def test_unbind_returns_unbind_resp_then_closes(sim: SimulatorThread,
                                                esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    esme.bind()
    resp = esme.client.unbind()
    assert resp.command == "unbind_resp"
    assert resp.status == 0
    esme.expect_closed()
    assert sim.wait_for(lambda s: s.sessions == 0).unbinds == 1


def test_enquire_link_is_answered(sim: SimulatorThread, esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    esme.bind()
    req = smpplib.smpp.make_pdu("enquire_link", client=esme.client)
    esme.client.send_pdu(req)
    resp = esme.client.read_pdu()
    assert resp.command == "enquire_link_resp"
    assert resp.sequence == req.sequence


def test_unknown_command_gets_generic_nack(sim: SimulatorThread) -> None:
    raw = RawEsme(sim.port)
    try:
        raw.bind()
        raw.send(P.pack_pdu(0x00000103, 77, b"\x00"))  # data_sm: not supported
        raw.send(P.pack_pdu(0x0000ABCD, 78))
        for seq in (77, 78):
            resp = raw.recv()
            assert resp is not None
            assert resp.command_id == P.CommandId.GENERIC_NACK
            assert resp.command_status == P.Status.ESME_RINVCMDID
            assert resp.sequence_number == seq
        # The session is still usable.
        raw.send(submit_pdu(79))
        resp = raw.recv()
        assert resp is not None and resp.command_status == 0
    finally:
        raw.close()


def test_bad_command_length_gets_generic_nack_and_close(sim: SimulatorThread) -> None:
    raw = RawEsme(sim.port)
    try:
        raw.send(b"\x00\x00\x00\x08\x00\x00\x00\x15")
        resp = raw.recv()
        assert resp is not None
        assert resp.command_id == P.CommandId.GENERIC_NACK
        assert resp.command_status == P.Status.ESME_RINVCMDLEN
        assert raw.recv() is None
    finally:
        raw.close()


def test_outage_drops_binds_and_refuses_new_ones(sim: SimulatorThread,
                                                 esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    esme.bind()
    sim.set_outage(True)
    esme.expect_closed()
    refused = esme_factory(sim.port)
    with pytest.raises(smpplib.exceptions.ConnectionError):
        refused.bind()
    sim.set_outage(False)
    again = esme_factory(sim.port)
    assert again.bind().status == 0
    again.submit(registered_delivery=0)
    again.read_until(lambda: len(again.resps) == 1)
    assert again.resps[0].status == 0
    assert sim.stats.refused_connections >= 1


def test_outage_with_bind_status(sim: SimulatorThread, esme_factory: EsmeFactory) -> None:
    sim.set_outage(True, bind_status=P.Status.ESME_RSYSERR)
    esme = esme_factory(sim.port)
    with pytest.raises(smpplib.exceptions.PDUError) as info:
        esme.bind()
    assert info.value.args[1] == P.Status.ESME_RSYSERR
    sim.set_outage(False)
    assert esme_factory(sim.port).bind().status == 0


def test_receipts_survive_an_outage(sim: SimulatorThread, esme_factory: EsmeFactory) -> None:
    esme = esme_factory(sim.port)
    esme.bind("transmitter")
    esme.submit()
    esme.read_until(lambda: len(esme.resps) == 1)
    sim.set_outage(True)
    sim.wait_for(lambda s: s.receipts_pending == 1 and s.sessions == 0)
    sim.set_outage(False)
    rx = esme_factory(sim.port)
    rx.bind("receiver")
    rx.read_until(lambda: len(rx.receipts) == 1)
    assert rx.receipts[0].receipted_message_id == esme.resps[0].message_id


def test_simulator_thread_stats_and_port(sim: SimulatorThread) -> None:
    assert sim.port > 0
    stats = sim.stats
    assert stats["submits"] == 0
    assert stats.as_dict()["binds"] == 0


def test_originated_mo_message_over_the_session(
    sim: SimulatorThread, esme_factory: EsmeFactory
) -> None:
    esme = esme_factory(sim.port)
    esme.bind()
    sim.originate("smsc-uk", "+447700900123", "60001", "STOP")
    sim.originate("smsc-uk", "+447700900124", "60001", "ARRÊT ✋")
    esme.read_until(lambda: len(esme.receipts) == 2)
    stop, unicode_mo = esme.receipts
    assert stop.esm_class == 0x00  # MO, not a receipt
    assert stop.source_addr == b"447700900123"
    assert (stop.source_addr_ton, stop.source_addr_npi) == (1, 1)
    assert stop.destination_addr == b"60001"
    assert stop.short_message == b"STOP" and stop.data_coding == 0
    assert unicode_mo.data_coding == 0x08
    assert unicode_mo.short_message.decode("utf-16-be") == "ARRÊT ✋"
    sim.wait_for(lambda s: s.receipts_acked == 2)
