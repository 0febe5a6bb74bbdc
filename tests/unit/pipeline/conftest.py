"""Factory fixtures for the pipeline's unit tests: a worker built from explicit settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.app import Worker, create_app
from smsflow.settings import Settings


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    """A whole worker (every agent registered), never started: no broker is contacted."""
    settings = Settings(home=tmp_path / "home", kafka_bootstrap="127.0.0.1:1",
                        app_id="unit-worker", topic_prefix="unit.")
    yield create_app(settings)
