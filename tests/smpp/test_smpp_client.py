"""SmppClient: pure codec/backoff helpers, then the client against the real SMSC simulator."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.smpp import (
    BindState,
    InboundDeliver,
    SmppClient,
    SmppClientClosed,
    SmppClientConfig,
    SubmitOptions,
    SubmitResult,
    SubmitTimeout,
)
from connectors.smpp.backoff import backoff_delay
from connectors.smpp.codec import (
    MAX_SMSC_PDU_LEN,
    FrameSplitter,
    PduError,
    decode_tlvs,
    parse_data_sm,
    parse_deliver_sm,
    parse_message_id,
)
from connectors.smsc_sim import SimulatorThread
from smsflow.domain.encoding import plan_segments
from smsflow.domain.receipts import IdFormat, ReceiptState, normalize_message_id
from smsflow.domain.smpp_status import ESME_RTHROTTLED, ESME_RX_T_APPN, StatusCategory

SYSTEM_ID = "smsflow"
PASSWORD = "secret"
DEST = "447700900123"
SOURCE = "SMSFLOW"


# =============================================================================================
# pure helpers (no network)
# =============================================================================================


def _pdu(command_id: int, seq: int, body: bytes = b"", status: int = 0) -> bytes:
    return (
        (16 + len(body)).to_bytes(4, "big")
        + b"".join(v.to_bytes(4, "big") for v in (command_id, status, seq))
        + body
    )


def test_frame_splitter_reassembles_arbitrary_chunks() -> None:
    stream = b"".join(_pdu(0x80000004, i, b"%d\x00" % i) for i in range(50))
    rng = random.Random(3)
    buf = FrameSplitter(MAX_SMSC_PDU_LEN)
    frames: list[bytes] = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 40)
        frames += buf.feed(stream[pos : pos + step])
        pos += step
    assert len(frames) == 50
    assert b"".join(frames) == stream
    assert buf.buffered == 0


@pytest.mark.parametrize("length", [0, 15, 64 * 1024 + 1])
def test_frame_splitter_rejects_bad_lengths(length: int) -> None:
    with pytest.raises(PduError):
        FrameSplitter(MAX_SMSC_PDU_LEN).feed(length.to_bytes(4, "big") + b"\x00" * 12)


def test_decode_tlvs_first_wins() -> None:
    data = b"\x00\x1e\x00\x03ab\x00" + b"\x04\x27\x00\x01\x02" + b"\x14\x00\x00\x00"
    assert decode_tlvs(data, first_wins=True) == {0x1E: b"ab\x00", 0x427: b"\x02", 0x1400: b""}
    twice = b"\x04\x27\x00\x01\x02" + b"\x04\x27\x00\x01\x03"
    assert decode_tlvs(twice, first_wins=True) == {0x427: b"\x02"}  # the client's receipts
    assert decode_tlvs(twice) == {0x427: b"\x03"}  # the simulator's default
    with pytest.raises(PduError):
        decode_tlvs(b"\x00\x1e\x00\x05ab", first_wins=True)
    with pytest.raises(PduError):
        decode_tlvs(b"\x00\x1e\x00", first_wins=True)


def _deliver_body(sm: bytes, tlvs: bytes = b"", esm_class: int = 0x04) -> bytes:
    return (
        b"\x00"
        + b"\x01\x01"
        + DEST.encode()
        + b"\x00"
        + b"\x05\x00"
        + SOURCE.encode()
        + b"\x00"
        + bytes([esm_class, 0, 0])
        + b"\x00\x00"
        + bytes([0, 0, 0x08, 0, len(sm)])
        + sm
        + tlvs
    )


def test_parse_deliver_sm() -> None:
    body = _deliver_body(b"id:1 stat:DELIVRD", b"\x04\x27\x00\x01\x02\x99\x99\x00\x01\x07")
    d = parse_deliver_sm(body)
    assert (d.source_addr, d.source_addr_ton, d.source_addr_npi) == (DEST, 1, 1)
    assert (d.destination_addr, d.dest_addr_ton, d.dest_addr_npi) == (SOURCE, 5, 0)
    assert d.esm_class == 0x04
    assert d.data_coding == 0x08
    assert d.short_message == b"id:1 stat:DELIVRD"
    assert d.tlvs == {0x427: b"\x02", 0x9999: b"\x07"}  # unknown TLVs are kept
    with pytest.raises(PduError):
        parse_deliver_sm(body[:30])
    with pytest.raises(PduError):
        parse_deliver_sm(b"\x00\x01")


def test_parse_data_sm() -> None:
    body = b"\x00\x01\x01123\x00\x01\x01456\x00\x04\x00\x00" + b"\x04\x24\x00\x02hi"
    d = parse_data_sm(body)
    assert (d.source_addr, d.destination_addr, d.esm_class) == ("123", "456", 0x04)
    assert d.short_message == b""
    assert d.tlvs == {0x424: b"hi"}


def test_parse_message_id() -> None:
    assert parse_message_id(b"0a1b\x00") == "0a1b"
    assert parse_message_id(b"0a1b") == "0a1b"
    assert parse_message_id(b"") is None
    assert parse_message_id(b"\x00") is None


def test_backoff_delay() -> None:
    kwargs: dict[str, Any] = {"initial": 0.5, "maximum": 30.0, "jitter": 0.5}
    assert backoff_delay(0, rand=0.0, **kwargs) == 0.5
    assert backoff_delay(3, rand=0.0, **kwargs) == 4.0
    assert backoff_delay(10, rand=0.0, **kwargs) == 30.0
    assert backoff_delay(10_000, rand=0.0, **kwargs) == 30.0
    for attempt in range(12):
        for rand in (0.0, 0.3, 0.999):
            delay = backoff_delay(attempt, rand=rand, **kwargs)
            ceiling = min(30.0, 0.5 * 2**attempt)
            assert ceiling / 2 < delay <= ceiling
    with pytest.raises(ValueError):
        backoff_delay(-1, rand=0.0, **kwargs)
    with pytest.raises(ValueError):
        backoff_delay(0, rand=1.0, **kwargs)


def test_config_validation() -> None:
    SmppClientConfig("h", 1, "id", "pw")
    with pytest.raises(ValueError):
        SmppClientConfig("h", 1, "id", "password9")  # 9 chars: password is max 8
    with pytest.raises(ValueError):
        SmppClientConfig("h", 1, "x" * 16, "pw")
    with pytest.raises(ValueError):
        SmppClientConfig("h", 0, "id", "pw")
    with pytest.raises(ValueError):
        SmppClientConfig("h", 1, "id", "pw", window_size=0)
    assert SmppClientConfig("h", 1, "id", "pw").bind_name == "id@h:1"
    assert SmppClientConfig("h", 1, "id", "pw", name="uk-1").bind_name == "uk-1"


def test_submit_before_start_and_after_close() -> None:
    client = SmppClient(SmppClientConfig("127.0.0.1", 9, SYSTEM_ID, PASSWORD))
    with pytest.raises(RuntimeError):
        client.submit("m", plan_segments("x"), source_addr=SOURCE, destination_addr=DEST)
    client.close()
    assert client.state is BindState.CLOSED
    with pytest.raises(SmppClientClosed):
        client.start()


# =============================================================================================
# against the simulator
# =============================================================================================


def sim_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "seed": 11,
        "accounts": [{"system_id": SYSTEM_ID, "password": PASSWORD}],
        "profiles": {"default": {"receipt_delay_ms": 10, "delivery_ratio": 1.0}},
        "message_id_format": "hex",
        "receipt_retry_ms": 50,
    }
    config.update(overrides)
    return config


class Recorder:
    """Collects callback output (called from the client's session thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: list[SubmitResult] = []
        self.delivers: list[InboundDeliver] = []
        self.threads: set[str] = set()

    def on_result(self, result: SubmitResult) -> None:
        with self.lock:
            self.results.append(result)
            self.threads.add(threading.current_thread().name)

    def on_receipt(self, deliver: InboundDeliver) -> None:
        with self.lock:
            self.delivers.append(deliver)
            self.threads.add(threading.current_thread().name)

    def receipt_ids(self) -> list[str]:
        with self.lock:
            delivers = list(self.delivers)
        return [d.parse_receipt(id_format=IdFormat.HEX).smsc_message_id for d in delivers]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def sims() -> Iterator[Callable[..., SimulatorThread]]:
    started: list[SimulatorThread] = []

    def factory(**overrides: Any) -> SimulatorThread:
        sim = SimulatorThread(sim_config(**overrides)).start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


ClientFactory = Callable[..., tuple[SmppClient, Recorder]]


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    made: list[SmppClient] = []

    def factory(port: int, *, start: bool = True, **overrides: Any) -> tuple[SmppClient, Recorder]:
        params: dict[str, Any] = {
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.5,
            "close_timeout_s": 3.0,
            **overrides,
        }
        recorder = Recorder()
        client = SmppClient(
            SmppClientConfig(
                "127.0.0.1", port, SYSTEM_ID, params.pop("password", PASSWORD), **params
            ),
            on_submit_result=recorder.on_result,
            on_receipt=recorder.on_receipt,
        )
        made.append(client)
        if start:
            client.start()
            assert client.wait_until_bound(5.0)
        return client, recorder

    yield factory
    for client in made:
        client.close()
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("smpp-")]
    assert not leftover, f"threads left behind: {leftover}"


def _submit(client: SmppClient, ref: str, text: str = "hello world", **kw: Any) -> Any:
    return client.submit(ref, plan_segments(text), source_addr=SOURCE, destination_addr=DEST, **kw)


@pytest.mark.smpp
def test_bind_submit_receipt_round_trip_with_window(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims(profiles={"default": {"submit_latency_ms": 30, "receipt_delay_ms": 10}})
    client, rec = clients(sim.port, window_size=4)
    assert client.state is BindState.BOUND

    max_in_flight = 0
    futures = []
    for i in range(20):
        futures.append(_submit(client, f"msg-{i}"))
        max_in_flight = max(max_in_flight, client.in_flight)
    results = [f.result(10) for f in futures]
    assert max_in_flight <= 4
    assert max_in_flight >= 2  # the window is actually used, not one at a time

    assert [r.reference for r in results] == [f"msg-{i}" for i in range(20)]
    for r in results:
        assert r.ok and r.category is StatusCategory.OK and r.command_status == 0
        assert r.smsc_message_id is not None
        assert r.latency_s >= 0.025  # the simulator's 30 ms submit latency
        assert r.bind_name == client.name
    assert sorted(rec.results, key=lambda r: r.reference) == sorted(
        results, key=lambda r: r.reference
    )

    wait_until(lambda: len(rec.delivers) == 20)
    expected = {normalize_message_id(r.smsc_message_id or "", IdFormat.HEX) for r in results}
    assert set(rec.receipt_ids()) == expected
    deliver = rec.delivers[0]
    assert deliver.is_receipt
    assert deliver.source_addr == DEST and deliver.destination_addr == SOURCE
    assert 0x001E in deliver.tlvs and 0x0427 in deliver.tlvs
    receipt = deliver.parse_receipt(id_format=IdFormat.HEX)
    assert receipt.state is ReceiptState.DELIVERED
    assert rec.threads == {f"smpp-{client.name}"}  # callbacks run on the session thread
    assert sim.wait_for(lambda s: s.receipts_acked == 20).receipts_nacked == 0


@pytest.mark.smpp
def test_two_thousand_submits_all_get_results_and_receipts(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims(profiles={"default": {"receipt_delay_ms": 5}})
    client, rec = clients(sim.port)
    n = 2000
    started = time.monotonic()
    futures = [_submit(client, f"m{i}") for i in range(n)]
    results = [f.result(30) for f in futures]
    elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    assert len({r.smsc_message_id for r in results}) == n
    wait_until(lambda: len(rec.delivers) == n, timeout=30)
    assert len(rec.results) == n
    ids = {normalize_message_id(r.smsc_message_id or "", IdFormat.HEX) for r in results}
    assert set(rec.receipt_ids()) == ids
    stats = client.stats
    assert (stats.resp_ok, stats.delivers_received, stats.parts_lost) == (n, n, 0)
    print(f"\n{n} submits in {elapsed:.2f}s = {n / elapsed:.0f} submit/s (client+sim, one process)")


@pytest.mark.smpp
def test_multipart_submit_reports_every_part(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims()
    client, rec = clients(sim.port)
    plan = plan_segments("Ж" * 150, 77)  # UCS-2, 3 parts
    assert plan.part_count == 3
    result = client.submit("long", plan, source_addr=SOURCE, destination_addr=DEST).result(5)
    assert result.ok
    assert len(result.parts) == 3
    assert [p.seq for p in result.parts] == [1, 2, 3]
    assert all(p.smsc_message_id for p in result.parts)
    assert result.smsc_message_id == result.parts[0].smsc_message_id
    wait_until(lambda: len(rec.delivers) == 3)
    assert set(rec.receipt_ids()) == {
        normalize_message_id(i or "", IdFormat.HEX) for i in result.message_ids
    }


@pytest.mark.smpp
def test_resending_selected_parts_keeps_their_numbers(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims()
    client, rec = clients(sim.port)
    plan = plan_segments("y" * 400, 12)  # 3 parts
    subset = plan.select([2, 3])
    result = client.submit("resend", subset, source_addr=SOURCE, destination_addr=DEST).result(5)
    assert result.ok
    assert [p.seq for p in result.parts] == [2, 3]
    assert result.failed_parts == ()
    wait_until(lambda: len(rec.delivers) == 2)


@pytest.mark.smpp
def test_message_with_more_parts_than_the_window(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims(profiles={"default": {"submit_latency_ms": 20, "receipt_delay_ms": 5}})
    client, _rec = clients(sim.port, window_size=2)
    first = _submit(client, "short")
    plan = plan_segments("x" * 600, 5)  # 4 parts > window of 2: waits for an empty window
    long = client.submit("long", plan, source_addr=SOURCE, destination_addr=DEST)
    last = _submit(client, "after")  # FIFO: admitted after the long one
    assert first.result(5).ok
    result = long.result(5)
    assert result.ok and len(result.parts) == 4
    assert last.result(5).ok
    assert client.in_flight == 0


@pytest.mark.smpp
def test_throttling_is_classified_backpressure(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims(
        profiles={"default": {"throttle_tps": 20, "throttle_burst": 5, "receipt_delay_ms": 5}}
    )
    client, _rec = clients(sim.port)
    results = [f.result(5) for f in [_submit(client, f"t{i}") for i in range(60)]]
    throttled = [r for r in results if r.command_status == ESME_RTHROTTLED]
    accepted = [r for r in results if r.ok]
    assert throttled and accepted
    assert len(throttled) + len(accepted) == 60
    for r in throttled:
        assert r.category is StatusCategory.BACKPRESSURE
        assert not r.ok and not r.connection_lost
        assert r.status_name == "ESME_RTHROTTLED"
        assert r.smsc_message_id is None
    assert client.stats.resp_backpressure == len(throttled) == sim.stats.throttled
    assert client.state is BindState.BOUND  # throttling never costs the bind


@pytest.mark.smpp
def test_outage_reports_in_flight_as_connection_lost_and_rebinds(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims(profiles={"default": {"submit_latency_ms": 400, "receipt_delay_ms": 10}})
    client, rec = clients(sim.port)
    futures = [_submit(client, f"o{i}") for i in range(10)]
    sim.wait_for(lambda s: s.submits == 10)
    sim.set_outage(True)

    results = [f.result(5) for f in futures]
    for r in results:
        assert r.connection_lost
        assert not r.ok
        assert r.command_status is None
        assert r.category is StatusCategory.TEMPORARY
        assert r.status_name == "CONNECTION_LOST"
    assert {r.reference for r in rec.results} == {f"o{i}" for i in range(10)}
    assert client.stats.parts_lost == 10

    # While the SMSC is down the client keeps trying (and failing) to bind.
    wait_until(lambda: client.stats.bind_failures >= 2, timeout=5)
    assert client.state is not BindState.BOUND
    with pytest.raises(SubmitTimeout):
        _submit(client, "during-outage", timeout=0.1)

    sim.set_outage(False)
    assert client.wait_until_bound(5.0)
    assert client.stats.binds == 2
    assert client.stats.connection_losses == 1
    after = _submit(client, "after").result(5)
    assert after.ok
    # The SMSC had accepted the in-flight messages before going down. Their receipts may
    # arrive before the outage (even before the delayed resps), after the rebind, or both
    # (a receipt whose deliver_sm_resp was lost is sent again): at-least-once, so count ids.
    wait_until(lambda: len(set(rec.receipt_ids())) == 11)
    assert normalize_message_id(after.smsc_message_id or "", IdFormat.HEX) in rec.receipt_ids()


@pytest.mark.smpp
def test_unanswered_submit_drops_the_connection(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims(profiles={"default": {"submit_latency_ms": 3000}})
    client, _rec = clients(sim.port, response_timeout_s=0.3)
    result = _submit(client, "slow").result(5)
    assert result.connection_lost
    assert "submit_sm_resp" in client.stats.last_disconnect_reason
    assert client.wait_until_bound(5.0)
    assert client.stats.binds >= 2


@pytest.mark.smpp
def test_close_is_clean(sims: Callable[..., SimulatorThread], clients: ClientFactory) -> None:
    sim = sims(profiles={"default": {"submit_latency_ms": 100, "receipt_delay_ms": 10}})
    client, _rec = clients(sim.port)
    futures = [_submit(client, f"c{i}") for i in range(5)]
    client.close()  # drains the window, then unbinds
    assert all(f.result(0).ok for f in futures)
    assert client.state is BindState.CLOSED
    stats = client.stats
    assert stats.clean_unbinds == 1
    assert stats.connection_losses == 0
    assert sim.wait_for(lambda s: s.unbinds == 1 and s.sessions == 0)
    assert not [t for t in threading.enumerate() if t.name.startswith("smpp-")]
    with pytest.raises(SmppClientClosed):
        _submit(client, "late")
    client.close()  # idempotent


@pytest.mark.smpp
def test_close_while_smsc_unreachable(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims(outage=True)
    client, _rec = clients(sim.port, start=False)
    client.start()
    wait_until(lambda: client.stats.bind_failures >= 1)
    waiter_error: list[BaseException] = []

    def blocked_submit() -> None:
        try:
            _submit(client, "blocked")
        except BaseException as exc:
            waiter_error.append(exc)

    t = threading.Thread(target=blocked_submit)
    t.start()
    started = time.monotonic()
    client.close()
    t.join(2)
    assert time.monotonic() - started < 2.5
    assert client.state is BindState.CLOSED
    assert len(waiter_error) == 1 and isinstance(waiter_error[0], SmppClientClosed)


@pytest.mark.smpp
def test_wrong_password_keeps_retrying_without_binding(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims()
    client, _rec = clients(sim.port, start=False, password="nope")
    client.start()
    assert not client.wait_until_bound(0.5)
    assert client.stats.bind_failures >= 2
    assert sim.stats.bind_failures >= 2


@pytest.mark.smpp
def test_receipt_callback_failure_is_not_acknowledged(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims()
    client, rec = clients(sim.port, start=False)
    failures = {"left": 2}
    original = rec.on_receipt

    def flaky(deliver: InboundDeliver) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("downstream unavailable")
        original(deliver)

    client._on_receipt = flaky  # inject a failing handler
    client.start()
    assert client.wait_until_bound(5)
    assert _submit(client, "r").result(5).ok
    wait_until(lambda: len(rec.delivers) == 1)  # redelivered by the SMSC after 2 nacks
    assert client.stats.deliver_callback_errors == 2
    assert sim.stats.receipts_nacked == 2


@pytest.mark.smpp
def test_enquire_link_keepalive(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims()
    client, _rec = clients(sim.port, enquire_link_interval_s=0.1)
    sim.wait_for(lambda s: s.enquire_links >= 3, timeout=5)
    assert client.state is BindState.BOUND
    assert client.stats.enquire_links_sent >= 3


@pytest.mark.smpp
def test_submit_refuses_to_block_an_event_loop(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims()
    client, _rec = clients(sim.port)

    async def misuse() -> None:
        _submit(client, "x")

    with pytest.raises(RuntimeError, match="submit_async"):
        asyncio.run(misuse())


@pytest.mark.smpp
def test_submit_from_callback_is_refused(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims()
    errors: list[BaseException] = []
    client, _rec = clients(sim.port)

    def resubmit(result: SubmitResult) -> None:
        try:
            _submit(client, "again")
        except RuntimeError as exc:
            errors.append(exc)

    client._on_submit_result = resubmit
    assert _submit(client, "first").result(5).ok
    assert len(errors) == 1 and "deadlock" in str(errors[0])


@pytest.mark.smpp
@pytest.mark.asyncio
async def test_submit_async_never_blocks_the_loop(
    sims: Callable[..., SimulatorThread], clients: ClientFactory
) -> None:
    sim = sims(profiles={"default": {"submit_latency_ms": 100, "receipt_delay_ms": 10}})
    client, _rec = clients(sim.port, window_size=2)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    started = time.monotonic()
    futures = [
        await client.submit_async(
            f"a{i}", plan_segments("hi"), source_addr=SOURCE, destination_addr=DEST
        )
        for i in range(6)
    ]
    results = await asyncio.gather(*futures)
    elapsed = time.monotonic() - started
    stop.set()
    await beat
    assert all(r.ok for r in results)
    assert elapsed >= 0.25  # window of 2 with 100 ms resp latency: >= 3 rounds
    assert max(gaps) < 0.08  # the loop kept running while submits waited for the window


class DeferredRecorder:
    """``on_deliver`` handler that keeps the ``ack`` functions instead of answering."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[tuple[InboundDeliver, Callable[[int], bool]]] = []

    def on_deliver(self, deliver: InboundDeliver, ack: Callable[[int], bool]) -> None:
        with self.lock:
            self.pending.append((deliver, ack))

    def count(self) -> int:
        with self.lock:
            return len(self.pending)

    def take(self) -> tuple[InboundDeliver, Callable[[int], bool]]:
        with self.lock:
            return self.pending.pop(0)


@pytest.fixture
def deferred_client(
    sims: Callable[..., SimulatorThread],
) -> Iterator[tuple[SimulatorThread, SmppClient, DeferredRecorder]]:
    sim = sims(receipt_retry_ms=50)
    recorder = DeferredRecorder()
    client = SmppClient(
        SmppClientConfig(
            "127.0.0.1", sim.port, SYSTEM_ID, PASSWORD, reconnect_initial_s=0.05,
            reconnect_max_s=0.5, close_timeout_s=3.0,
        ),
        on_deliver=recorder.on_deliver,
    )
    client.start()
    try:
        assert client.wait_until_bound(5.0)
        yield sim, client, recorder
    finally:
        client.close()


def _round_trip(client: SmppClient) -> None:
    """A submit without receipt and its response: every byte the client wrote before it has
    been read by the SMSC when this returns (one TCP stream, answered in order)."""
    no_receipt = SubmitOptions(registered_delivery=0)
    assert _submit(client, "barrier", options=no_receipt).result(5).ok


@pytest.mark.smpp
def test_deferred_deliver_is_answered_only_by_ack(
    deferred_client: tuple[SimulatorThread, SmppClient, DeferredRecorder],
) -> None:
    sim, client, rec = deferred_client
    assert _submit(client, "r").result(5).ok
    wait_until(lambda: rec.count() == 1)
    # Two sequential round trips: the second submit_sm is written after the read cycle of
    # the deliver_sm ended, so a deliver_sm_resp of that cycle would have reached the SMSC.
    _round_trip(client)
    _round_trip(client)
    stats = sim.stats
    assert stats.receipts_sent == 1
    assert stats.receipts_acked == 0 and stats.receipts_nacked == 0

    deliver, ack = rec.take()
    assert deliver.is_receipt
    acked_from = threading.Thread(target=ack, args=(0,))  # any thread may answer
    acked_from.start()
    acked_from.join(5)
    sim.wait_for(lambda s: s.receipts_acked == 1, timeout=5)
    assert ack(0) is False  # answered once only
    _round_trip(client)
    assert sim.stats.receipts_acked == 1 and rec.count() == 0


@pytest.mark.smpp
def test_deferred_deliver_nacked_is_delivered_again(
    deferred_client: tuple[SimulatorThread, SmppClient, DeferredRecorder],
) -> None:
    sim, client, rec = deferred_client
    assert _submit(client, "r").result(5).ok
    wait_until(lambda: rec.count() == 1)
    first, ack = rec.take()
    assert ack(ESME_RX_T_APPN) is True
    sim.wait_for(lambda s: s.receipts_nacked == 1, timeout=5)
    wait_until(lambda: rec.count() == 1)  # resent after receipt_retry_ms
    again, ack = rec.take()
    assert again.short_message == first.short_message
    assert ack(0) is True
    sim.wait_for(lambda s: s.receipts_acked == 1, timeout=5)
    assert client.stats.delivers_nacked == 1


@pytest.mark.smpp
def test_ack_after_the_connection_ended_is_dropped_and_redelivered(
    deferred_client: tuple[SimulatorThread, SmppClient, DeferredRecorder],
) -> None:
    sim, client, rec = deferred_client
    assert _submit(client, "r").result(5).ok
    wait_until(lambda: rec.count() == 1)
    first, stale_ack = rec.take()
    binds = client.stats.binds
    sim.set_outage(True)
    wait_until(lambda: client.state is not BindState.BOUND)
    sim.set_outage(False)
    wait_until(lambda: client.stats.binds > binds and client.state is BindState.BOUND)
    assert stale_ack(0) is False  # its connection is gone: dropped, not sent on the new one
    wait_until(lambda: rec.count() == 1)  # re-queued by the SMSC, delivered on the new bind
    again, ack = rec.take()
    assert again.short_message == first.short_message
    assert ack(0) is True
    sim.wait_for(lambda s: s.receipts_acked == 1, timeout=5)
    assert client.stats.deliver_acks_dropped == 1


@pytest.mark.smpp
def test_deferred_handler_failure_answers_temporary_error(
    sims: Callable[..., SimulatorThread],
) -> None:
    sim = sims(receipt_retry_ms=50)
    calls: list[InboundDeliver] = []

    def handler(deliver: InboundDeliver, ack: Callable[[int], bool]) -> None:
        calls.append(deliver)
        if len(calls) == 1:
            raise RuntimeError("downstream unavailable")
        ack(0)

    client = SmppClient(
        SmppClientConfig("127.0.0.1", sim.port, SYSTEM_ID, PASSWORD, close_timeout_s=3.0),
        on_deliver=handler,
    )
    with client:
        assert client.wait_until_bound(5)
        assert _submit(client, "r").result(5).ok
        sim.wait_for(lambda s: s.receipts_nacked == 1 and s.receipts_acked == 1, timeout=5)
    assert len(calls) == 2
    assert client.stats.deliver_callback_errors == 1
