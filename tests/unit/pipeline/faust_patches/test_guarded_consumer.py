"""The guarded consumer's bookkeeping against faust's own objects, without a broker.

The drills (tests/integration/test_scale_out.py, test_crash_recovery.py) show the whole on the
real broker; these pin down each correction: commits that neither pass nor forget a record,
refused stale acks, partitions put back on the fetch list, and the watchdog's verdicts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.errors import IllegalStateError
from faust.types import TP, Message

from pipeline.commit_guard import GUARD
from pipeline.faust_patches.guarded_consumer import CONSUMER_ATTRIBUTES, GuardedConsumer, install

TOPIC = "guarded-in"
TPS = (TP(TOPIC, 0), TP(TOPIC, 1))


@pytest.fixture(scope="module")
def app() -> Iterator[faust.App]:
    app = faust.App("guarded-consumer-test", broker="kafka://127.0.0.1:1")
    install(app)
    app.topics.acks_enabled_for = lambda topic: topic == TOPIC  # type: ignore[method-assign]
    yield app


@pytest.fixture
def consumer(app: faust.App) -> Iterator[GuardedConsumer]:
    consumer = app.transport.create_consumer(
        callback=_ignore, on_partitions_revoked=_ignore, on_partitions_assigned=_ignore,
    )
    assert isinstance(consumer, GuardedConsumer)
    app.consumer = consumer
    consumer.assignment = lambda: set(TPS)  # type: ignore[method-assign]
    consumer.highwater = lambda tp: 100  # type: ignore[method-assign]
    app.consumer_generation_id = 3
    app.rebalancing = False
    app.flow_control.resume()
    consumer._set_active_tps(set(TPS))
    yield consumer
    # The consumer's thread made an event loop; closed here, or its finaliser (Python code)
    # may run inside pytest's ast.parse of a later module, and CPython 3.11 then raises
    # "AST constructor recursion depth mismatch" at the end of the session.
    consumer._thread.thread_loop.close()


async def _ignore(*_args: Any) -> None:
    return None


def _message(tp: TP, offset: int, generation: int = 3) -> Message:
    return Message(tp.topic, tp.partition, offset, 0.0, 0, None, None, b"v", None, tp=tp,
                   generation_id=generation)


def _take(consumer: GuardedConsumer, message: Message) -> Message:
    """What a stream does when it takes a record: faust tracks it as in flight."""
    consumer._unacked_messages.add(message)
    return message


def test_commits_cover_only_the_processed_run_from_the_committed_offset(
    consumer: GuardedConsumer,
) -> None:
    tp = TPS[0]
    consumer._committed_offset[tp] = 10
    for offset in (11, 12):
        consumer.ack(_take(consumer, _message(tp, offset)))
    assert consumer._new_offset(tp) is None  # 10 not processed: faust would commit 13
    consumer.ack(_take(consumer, _message(tp, 10)))
    assert consumer._new_offset(tp) == 13
    assert consumer._new_offset(tp) == 13  # computing does not forget (faust pops the run)
    consumer._committed_offset[tp] = 13  # the commit went through
    consumer.ack(_take(consumer, _message(tp, 13)))
    assert consumer._new_offset(tp) == 14
    assert consumer._acked_index[tp] == {13}  # below the committed offset: pruned


def test_commits_are_capped_at_the_oldest_record_in_flight(consumer: GuardedConsumer) -> None:
    tp = TPS[0]
    consumer._committed_offset[tp] = 10
    for offset in (10, 11, 12):
        consumer.ack(_take(consumer, _message(tp, offset)))
    consumer._acked_index[tp].add(13)  # e.g. a gap faust filled, past a record still held
    held = _take(consumer, _message(tp, 13))  # faust's unacked set is weak: the stream holds it
    assert consumer._filter_committable_offsets([tp]) == {tp: 13}
    assert held.offset == 13


def test_an_ack_across_a_rebalance_is_refused_and_the_record_stays_uncommitted(
    consumer: GuardedConsumer,
) -> None:
    tp = TPS[1]
    consumer._committed_offset[tp] = 5
    stale = _take(consumer, _message(tp, 5, generation=2))
    refused = GUARD.stale_acks_refused
    assert consumer.ack(stale) is False
    assert GUARD.stale_acks_refused == refused + 1
    assert stale not in consumer._unacked_messages  # faust stops waiting for it
    assert 5 not in consumer._acked_index[tp]
    assert consumer._new_offset(tp) is None


def test_a_second_delivery_of_an_acked_record_does_not_pin_the_in_flight_cap(
    consumer: GuardedConsumer,
) -> None:
    tp = TPS[0]
    consumer._committed_offset[tp] = 7
    consumer.ack(_take(consumer, _message(tp, 7)))
    again = _take(consumer, _message(tp, 7))
    assert consumer.ack(again) is False
    assert again not in consumer._unacked_messages
    assert consumer._filter_committable_offsets([tp]) == {tp: 8}


def test_emptied_buffers_put_partitions_back_on_the_fetch_list(consumer: GuardedConsumer) -> None:
    tp = TPS[0]
    consumer.app.in_recovery = False
    consumer.on_buffer_full(tp)  # faust: the stream's buffer is full, stop fetching
    assert tp not in consumer._get_active_partitions()
    consumer.app.flow_control.resume()  # empties every buffer: no drop callback ever comes
    assert tp in consumer._get_active_partitions()
    assert tp not in consumer._buffered_partitions


def test_a_paused_partition_stays_off_the_fetch_list(consumer: GuardedConsumer) -> None:
    tp = TPS[1]
    consumer.on_buffer_full(tp)
    consumer.pause_partitions([tp])
    consumer.buffers_cleared()
    assert tp not in consumer._get_active_partitions()


def _rounds(consumer: GuardedConsumer, n: int) -> list[Any]:
    found: list[Any] = []
    for _ in range(n):
        found = consumer.stranded()
    return found


def test_the_watchdog_refetches_a_record_delivered_but_never_taken(
    consumer: GuardedConsumer,
) -> None:
    tp = TPS[0]
    consumer._committed_offset[tp] = 20
    consumer._next[tp] = (3, 26)  # 20-25 delivered in this generation; 20 was never taken
    seeks: list[tuple[TP, int]] = []
    consumer._thread.seek = lambda partition, offset: seeks.append((partition, offset))  # type: ignore[method-assign]
    assert _rounds(consumer, consumer.IDLE_ROUNDS - 1) == []  # a slow buffer is not a loss
    found = consumer.stranded()
    assert found == [(tp, 20, "dropped")]
    asyncio.run(consumer.reread(*found[0]))
    assert seeks == [(tp, 20)]
    assert consumer._next_of(tp) == 20  # nothing after it is delivered before it


def test_the_watchdog_leaves_processed_and_in_flight_records_alone(
    consumer: GuardedConsumer,
) -> None:
    first, second = TPS
    consumer._committed_offset[first] = 20
    consumer._next[first] = (3, 26)
    held = _take(consumer, _message(first, 20))  # in an agent (which keeps a reference)
    consumer._committed_offset[second] = 30
    consumer._next[second] = (3, 31)
    consumer._acked_index[second].add(30)  # processed, commit pending
    assert _rounds(consumer, consumer.IDLE_ROUNDS + 1) == []
    assert held in consumer._unacked_messages


def test_the_watchdog_finds_a_partition_faust_stopped_fetching(consumer: GuardedConsumer) -> None:
    tp = TPS[1]
    consumer._committed_offset[tp] = 40
    consumer._get_active_partitions().discard(tp)  # off the list, not paused
    assert _rounds(consumer, consumer.STALL_ROUNDS)[-1:] == [(tp, 40, "off the fetch list")]


def test_the_watchdog_waits_while_rebalancing(consumer: GuardedConsumer) -> None:
    tp = TPS[0]
    consumer._committed_offset[tp] = 20
    consumer._next[tp] = (3, 26)
    consumer.app.rebalancing = True
    assert _rounds(consumer, consumer.IDLE_ROUNDS + 2) == []


def test_emptied_buffers_are_fetched_again_from_the_first_record_not_taken(
    consumer: GuardedConsumer,
) -> None:
    tp = TPS[0]
    consumer._committed_offset[tp] = 50
    consumer._first_delivered[tp] = 50
    consumer._next[tp] = (3, 60)  # 50-59 delivered
    for offset in (50, 51):
        consumer.ack(_take(consumer, _message(tp, offset)))
    held = _take(consumer, _message(tp, 52))  # taken, in flight; 53-59 still in a buffer
    seeks: list[tuple[TP, int]] = []
    consumer._thread.seek = lambda partition, offset: seeks.append((partition, offset))  # type: ignore[method-assign]
    consumer.app.flow_control.resume()  # faust empties every stream buffer
    assert seeks == [(tp, 53)]
    assert consumer._next_of(tp) == 53
    assert held.offset == 52


def test_offsets_absent_from_the_log_are_accepted_after_three_fetches(
    consumer: GuardedConsumer,
) -> None:
    """A gap that fetching again does not fill (transaction markers) must not loop forever."""
    tp = TPS[1]
    assert not consumer._absent(tp, 70, 72)
    assert not consumer._absent(tp, 70, 72)
    assert consumer._absent(tp, 70, 72)
    assert {70, 71} <= consumer._acked_index[tp]
    assert not consumer._absent(tp, 80, 81)  # a new gap starts counting again


def test_a_record_one_of_two_agents_took_is_delivered_again_when_the_other_lost_it(
    consumer: GuardedConsumer, app: faust.App,
) -> None:
    """sms.sent feeds two agents: taken by one and emptied from the other's buffer, a record
    is fetched again (both agents get the new copy) and the half-taken copy stops holding the
    in-flight cap."""
    tp = TPS[1]
    app.topics._tp_index[tp] = {object(), object()}  # type: ignore[attr-defined]
    try:
        consumer._committed_offset[tp] = 90
        consumer._first_delivered[tp] = 90
        consumer._next[tp] = (3, 93)
        consumer.ack(_take(consumer, _message(tp, 90)))
        half = _take(consumer, _message(tp, 91))  # one agent has it; the other's copy is lost
        seeks: list[tuple[TP, int]] = []
        consumer._thread.seek = lambda partition, offset: seeks.append((partition, offset))  # type: ignore[method-assign]
        consumer.app.flow_control.resume()
        assert seeks == [(tp, 91)]
        assert half not in consumer._unacked_messages
    finally:
        del app.topics._tp_index[tp]  # type: ignore[attr-defined]


def test_faust_still_has_the_consumer_attributes_the_patch_uses(
    consumer: GuardedConsumer,
) -> None:
    missing = [name for name in CONSUMER_ATTRIBUTES if not hasattr(consumer, name)]
    assert not missing, f"faust's consumer lost {missing}: re-read guarded_consumer.py"
    assert isinstance(consumer.app.topics._tp_index, dict)  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_rebalance_waits_for_acks_but_not_for_ever(
    consumer: GuardedConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust waits for ever for a delivered record no agent acks (a failover drill hung 10
    minutes); the guarded wait releases it unacked after WAIT_EMPTY_MAX_S: not committable.
    A record acked in time is waited for and committable as before. (One test: the app's
    commit machinery is bound to the first event loop that used it.)"""
    consumer.loop = asyncio.get_running_loop()  # the fixture's consumer was built elsewhere

    async def no_commit(*_args: Any, **_kwargs: Any) -> bool:
        return False  # commits go through the consumer's thread, not wanted here

    monkeypatch.setattr(consumer, "commit", no_commit)
    released_before = GUARD.wait_empty_released
    monkeypatch.setattr(consumer, "WAIT_EMPTY_MAX_S", 5.0)
    in_flight = _message(TPS[1], 3)
    in_flight.incref()
    consumer.track_message(in_flight)
    asyncio.get_running_loop().call_later(0.1, consumer.ack, in_flight)
    await asyncio.wait_for(consumer.wait_empty(), timeout=10)
    assert GUARD.wait_empty_released == released_before
    assert in_flight not in consumer._unacked_messages
    assert 3 in consumer._acked_index[TPS[1]], "acked by its agent: committable"

    monkeypatch.setattr(consumer, "WAIT_EMPTY_MAX_S", 0.2)
    stuck = _message(TPS[0], 7)
    stuck.incref()  # delivered to an agent that never acks it
    consumer.track_message(stuck)
    await asyncio.wait_for(consumer.wait_empty(), timeout=10)
    assert stuck.acked and stuck not in consumer._unacked_messages
    assert 7 not in consumer._acked_index[TPS[0]], "released, not acked: read again"
    assert GUARD.wait_empty_released == released_before + 1


def test_a_rewind_seeks_on_the_consumer_threads_loop_not_the_callers(
    consumer: GuardedConsumer,
) -> None:
    """aiokafka's fetcher is not thread-safe: a seek from the app's loop raced its
    ``fetched_records`` (KeyError in the fetcher, the worker crashed under load)."""
    thread = consumer._thread
    loop = thread.thread_loop
    seeks: list[tuple[TP, int, int]] = []
    seeked = threading.Event()

    def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset, threading.get_ident()))
        seeked.set()

    thread.seek = seek  # type: ignore[method-assign,assignment]
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        while not loop.is_running():
            time.sleep(0.001)
        consumer._rewind(TPS[1], 7)
        assert consumer._next_of(TPS[1]) == 7  # the bookkeeping moves at once
        assert seeked.wait(5.0)
        assert seeks == [(TPS[1], 7, runner.ident)]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5.0)


def test_a_rewind_before_the_consumer_thread_runs_seeks_at_once(
    consumer: GuardedConsumer,
) -> None:
    seeks: list[tuple[TP, int]] = []
    consumer._thread.seek = lambda tp, offset: seeks.append((tp, offset))  # type: ignore[method-assign,assignment]
    consumer._rewind(TPS[0], 3)
    assert seeks == [(TPS[0], 3)]


def test_a_seek_for_a_partition_revoked_meanwhile_is_dropped(consumer: GuardedConsumer) -> None:
    def revoked(tp: TP, offset: int) -> None:
        raise IllegalStateError(f"No current assignment for partition {tp}")

    consumer._thread.seek = revoked  # type: ignore[method-assign,assignment]
    consumer._rewind(TPS[0], 3)  # raises nothing: the next owner starts from the commit
    assert consumer._next_of(TPS[0]) == 3


def _recording(consumer: GuardedConsumer) -> tuple[list[int], list[tuple[TP, int]]]:
    """Offsets handed to the streams, and seeks, of ``consumer`` from now on."""
    delivered: list[int] = []
    seeks: list[tuple[TP, int]] = []

    async def callback(message: Message) -> None:
        delivered.append(message.offset)

    consumer.callback = callback
    consumer._thread.seek = lambda tp, offset: seeks.append((tp, offset))  # type: ignore[method-assign,assignment]
    return delivered, seeks


def _committed_offsets(consumer: GuardedConsumer, offsets: dict[TP, int | None]) -> None:
    """aiokafka's answer to faust's seek to the committed offsets (perform_seek)."""
    async def seek_to_committed() -> dict[TP, int | None]:
        return offsets

    consumer._thread.seek_to_committed = seek_to_committed  # type: ignore[method-assign,assignment]


@pytest.mark.asyncio
async def test_records_before_the_generations_committed_offsets_are_known_are_held_back(
    consumer: GuardedConsumer,
) -> None:
    """faust resumes the partitions after a rebalance and seeks them to their committed
    offsets only after that; a record fetched in between may come from past the committed
    offset (fetched under the old generation). Delivered, it started the partition's run in
    the middle and the records before it came later, out of order: the tracking windows
    dropped them (a scale-out run lost ~100 window events)."""
    consumer.loop = asyncio.get_running_loop()
    tp = TPS[0]
    delivered, seeks = _recording(consumer)
    app = consumer.app
    app.consumer_generation_id = 4
    for offset in (163, 164):  # past the committed offset (157), before the seek
        await consumer._deliver_in_order(tp, _message(tp, offset, generation=4), 0)
    assert delivered == [], "nothing delivered before the start is known"
    assert consumer._held[tp] == (4, 163)

    _committed_offsets(consumer, {tp: 157})
    assert await consumer.seek_to_committed() == {tp: 157}
    # aiokafka seeked to 157 (offset > 0): a batch fetched before the seek is refused ...
    await consumer._deliver_in_order(tp, _message(tp, 165, generation=4), 0)
    assert delivered == []
    # ... and the partition's run starts exactly at the committed offset.
    batch = consumer._seeks
    for offset in (157, 158):
        await consumer._deliver_in_order(tp, _message(tp, offset, generation=4), batch)
    assert delivered == [157, 158]
    assert consumer._first_delivered[tp] == 157
    assert seeks == [], "aiokafka's own seek sufficed"


@pytest.mark.asyncio
async def test_a_first_record_past_the_committed_offset_rewinds_to_it(
    consumer: GuardedConsumer,
) -> None:
    consumer.loop = asyncio.get_running_loop()
    tp = TPS[1]
    delivered, seeks = _recording(consumer)
    consumer.app.consumer_generation_id = 5
    _committed_offsets(consumer, {tp: 40})
    await consumer.seek_to_committed()
    batch = consumer._seeks
    await consumer._deliver_in_order(tp, _message(tp, 45, generation=5), batch)
    assert delivered == []
    assert seeks == [(tp, 40)], "fetched again from the committed offset"
    await consumer._deliver_in_order(tp, _message(tp, 40, generation=5), consumer._seeks)
    assert delivered == [40]


@pytest.mark.asyncio
async def test_held_records_are_fetched_again_when_no_seek_moves_the_partition(
    consumer: GuardedConsumer,
) -> None:
    """aiokafka seeks only partitions whose committed offset is above 0: with nothing
    committed (or 0) the held records must be fetched again by the guard itself."""
    consumer.loop = asyncio.get_running_loop()
    fresh, at_zero = TPS
    delivered, seeks = _recording(consumer)
    consumer.app.consumer_generation_id = 6
    await consumer._deliver_in_order(fresh, _message(fresh, 12, generation=6), 0)
    await consumer._deliver_in_order(fresh, _message(fresh, 10, generation=6), 0)
    await consumer._deliver_in_order(at_zero, _message(at_zero, 3, generation=6), 0)
    _committed_offsets(consumer, {fresh: None, at_zero: 0})
    await consumer.seek_to_committed()
    assert sorted(seeks) == [(fresh, 10), (at_zero, 0)]
    assert delivered == []
    await consumer._deliver_in_order(fresh, _message(fresh, 10, generation=6), consumer._seeks)
    assert delivered == [10]


@pytest.mark.asyncio
async def test_a_seek_answer_from_an_older_generation_sets_no_start(
    consumer: GuardedConsumer,
) -> None:
    consumer.loop = asyncio.get_running_loop()
    tp = TPS[0]
    delivered, _seeks = _recording(consumer)
    consumer.app.consumer_generation_id = 7

    async def seek_then_rebalance() -> dict[TP, int]:
        consumer.app.consumer_generation_id = 8  # another rebalance while seeking
        return {tp: 20}

    consumer._thread.seek_to_committed = seek_then_rebalance  # type: ignore[method-assign]
    await consumer.seek_to_committed()
    await consumer._deliver_in_order(tp, _message(tp, 25, generation=8), consumer._seeks)
    assert delivered == [], "generation 8 waits for its own seek"


class _Channel:
    """What the guarded consumer reads of an agent's channel: its stream buffer."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[int] = asyncio.Queue(maxsize)


def _full_buffer(consumer: GuardedConsumer, tp: TP, maxsize: int) -> tuple[_Channel, list[int]]:
    """A full stream buffer on ``tp``; deliveries are recorded once they found room (as
    faust's handler does: it waits for a free slot when the buffer is full)."""
    channel = _Channel(maxsize)
    for n in range(maxsize):
        channel.queue.put_nowait(n)
    consumer.app.topics._tp_index[tp] = {channel}  # type: ignore[attr-defined]
    delivered: list[int] = []

    async def callback(message: Message) -> None:
        while channel.queue.full():
            await asyncio.sleep(0.001)
        delivered.append(message.offset)

    consumer.callback = callback
    return channel, delivered


@pytest.mark.asyncio
async def test_a_full_buffer_is_waited_out_to_half_then_records_go_without_a_race(
    consumer: GuardedConsumer, app: faust.App, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backlog keeps a stream buffer full. Racing each record against the suspended flow
    (two tasks each) was ~19% of the per-event floor: the delivery waits for half a buffer of
    room instead, and the records after it find room without waiting."""
    consumer.loop = asyncio.get_running_loop()
    tp = TPS[0]
    channel, delivered = _full_buffer(consumer, tp, maxsize=4)

    async def no_race(*_aws: Any) -> Any:
        raise AssertionError("raced against the suspended flow")

    monkeypatch.setattr(consumer, "wait_first", no_race)
    waits = GUARD.buffer_waits
    try:
        delivery = asyncio.ensure_future(consumer._delivered_now(_message(tp, 7)))
        await asyncio.sleep(0.02)
        channel.queue.get_nowait()  # one slot free: not yet half empty
        await asyncio.sleep(0.02)
        assert not delivery.done() and delivered == []
        channel.queue.get_nowait()  # half empty
        assert await asyncio.wait_for(delivery, 1.0) is True
        assert delivered == [7]
        assert GUARD.buffer_waits == waits + 1
        channel.queue.put_nowait(0)  # the record went in; three of four slots taken
        assert await consumer._delivered_now(_message(tp, 8)) is True  # room: no wait
        assert GUARD.buffer_waits == waits + 1
    finally:
        del app.topics._tp_index[tp]  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_flow_stopped_while_waiting_for_room_cuts_the_delivery_short(
    consumer: GuardedConsumer, app: faust.App, monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer.loop = asyncio.get_running_loop()
    # mode's events and Service.wait_first are bound to the app's loop, not this test's: the
    # same race (first of the delivery and the suspended flow) on this loop.
    monkeypatch.setattr(consumer, "suspend_flow", asyncio.Event())

    async def race(*aws: Any) -> Any:
        futures = {asyncio.ensure_future(aw): aw for aw in aws}
        done, pending = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        for future in pending:
            future.cancel()
        return SimpleNamespace(done=[futures[future] for future in done])

    monkeypatch.setattr(consumer, "wait_first", race)
    tp = TPS[1]
    _channel, delivered = _full_buffer(consumer, tp, maxsize=2)
    try:
        delivery = asyncio.ensure_future(consumer._delivered_now(_message(tp, 3)))
        await asyncio.sleep(0.01)
        consumer.stop_flow()  # a rebalance begins
        assert await asyncio.wait_for(delivery, 1.0) is False
        assert delivered == []
    finally:
        consumer.resume_flow()
        del app.topics._tp_index[tp]  # type: ignore[attr-defined]


def test_lag_counts_records_between_the_next_delivery_and_the_high_watermark(
    consumer: GuardedConsumer,
) -> None:
    """What the backlog batching reads (pipeline/backlog_batching.py): per partition being
    delivered in this generation, high watermark (100 here) less the next offset."""
    assert consumer.lag() == 0  # nothing delivered yet: no position to count from
    consumer._next[TPS[0]] = (3, 40)
    consumer._next[TPS[1]] = (3, 100)
    assert consumer.lag() == 60
    consumer._next[TPS[1]] = (2, 0)  # a position of an earlier generation counts for nothing
    assert consumer.lag() == 60
    consumer.assignment = lambda: {TPS[1]}  # type: ignore[method-assign]
    assert consumer.lag() == 0  # revoked meanwhile: aiokafka would assert on it
