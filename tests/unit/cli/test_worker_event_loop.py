"""``SMSFLOW_WORKER_EVENT_LOOP``: the worker's loop is uvloop's unless asked for asyncio's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from smsflow.cli.worker import use_event_loop
from smsflow.settings import Settings


@pytest.fixture(autouse=True)
def _default_policy_after() -> Iterator[None]:
    yield
    asyncio.set_event_loop_policy(None)


def test_the_default_is_uvloop_and_faust_gets_its_loop() -> None:
    use_event_loop(Settings().worker_event_loop)
    loop = asyncio.new_event_loop()  # what faust's worker does through the policy
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_asyncio_keeps_pythons_loop() -> None:
    use_event_loop(Settings(worker_event_loop="asyncio").worker_event_loop)
    loop = asyncio.new_event_loop()
    try:
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_anything_else_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="worker_event_loop"):
        Settings(worker_event_loop="tokio")  # type: ignore[arg-type]
