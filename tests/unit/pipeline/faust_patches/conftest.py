"""Fixtures shared by the faust patch tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import faust
import pytest


@pytest.fixture
def fresh_app(request: pytest.FixtureRequest) -> Iterator[faust.App]:
    """A never-started faust app on a loop of its own: the loop faust's services pick up
    (set as the current one), closed afterwards instead of being left to the collector."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield faust.App(f"patch-test-{request.node.name}", broker="kafka://127.0.0.1:1",
                        loop=loop)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
