"""The sms.deferred release-time header and the releaser's pacing (pure parts)."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.deferral import RELEASE_AT_HEADER, _Pacer, release_at_header, release_at_of


def test_release_time_round_trips_through_the_header() -> None:
    headers = release_at_header(1_795_683_796.25)
    assert headers == [(RELEASE_AT_HEADER, b"1795683796.250")]
    assert release_at_of(headers) == pytest.approx(1_795_683_796.25)
    assert release_at_of([("other", b"1"), *headers]) == pytest.approx(1_795_683_796.25)
    assert release_at_of([(RELEASE_AT_HEADER, "12.5")]) == 12.5  # confluent-kafka may give str


@pytest.mark.parametrize(
    "headers",
    [None, [], [("other", b"1")], [(RELEASE_AT_HEADER, b"soon")], [(RELEASE_AT_HEADER, None)],
     [(RELEASE_AT_HEADER, b"nan")], [(RELEASE_AT_HEADER, b"\xff")]],
)
def test_a_missing_or_unreadable_release_time_is_none(headers: object) -> None:
    assert release_at_of(headers) is None  # type: ignore[arg-type]


def test_the_pacer_allows_one_second_of_burst_then_its_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def take(n: int, pacer: _Pacer) -> None:
        for _ in range(n):
            await pacer.take()

    pacer = _Pacer(10.0, clock=lambda: now[0], sleep=fake_sleep)
    asyncio.run(take(30, pacer))
    assert now[0] == pytest.approx(2.0)  # 10 at once, then 20 at 10/s
    assert len(slept) == 20
