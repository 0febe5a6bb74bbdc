"""The API in front of the whole pipeline: a message posted over HTTP is delivered, and its
status says so; an unroutable one ends REJECTED with the router's reason code."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest

from smsflow.cli import main as smsflow_main
from smsflow.devstack.flowrun import warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack
from smsflow.settings import Settings
from tests.integration.api_server import PEPPER, RunningApi, running_api
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Settings]:
    settings = isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("api-e2e"), "apie2e")
    with prepared_stack(
        settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG
    ) as stack, pytest.MonkeyPatch.context() as patch:
        warm_up(settings, timeout_s=120)
        patch.setenv("SMSFLOW_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
        patch.setenv("SMSFLOW_TOPIC_PREFIX", settings.topic_prefix)
        patch.setenv("SMSFLOW_API_KEY_PEPPER", PEPPER)
        yield settings
        stack.check_alive()


def create_key(tenant: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert smsflow_main(["tenants", "key", "create", tenant, "--quiet"]) == 0
    return out.getvalue().strip()


async def final_status(api: RunningApi, key: str, message_id: str, timeout_s: float = 60.0
                       ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, body, _ = await api.request("GET", f"/v1/messages/{message_id}", key=key)
        if status == 200 and body["terminal"]:
            return body
        assert time.monotonic() < deadline, f"no terminal state: {status} {body}"
        await asyncio.sleep(0.1)


@pytest.mark.asyncio
async def test_posted_message_is_delivered_and_its_status_says_so(stack_settings: Settings
                                                                  ) -> None:
    key = create_key("acme-bank")
    async with running_api(stack_settings) as api:
        status, accepted, _ = await api.request("POST", "/v1/messages", key=key, json={
            "destination": "+447700900123", "source": "ACME", "body": "ж" * 100,  # UCS-2: two parts
        })
        assert status == 202 and accepted["parts"] == 2
        unroutable = (await api.request("POST", "/v1/messages", key=key, json={
            "destination": "+33612345678", "source": "ACME", "body": "bonjour",
        }))[1]
        delivered = await final_status(api, key, accepted["message_id"])
        rejected = await final_status(api, key, unroutable["message_id"])
        status, usage, _ = await api.request("GET", "/v1/usage", key=key)
    assert delivered["state"] == "DELIVERED"
    assert (delivered["parts"], delivered["parts_accepted"]) == (2, 2)
    assert delivered["route_id"] == "uk-direct"
    assert (rejected["state"], rejected["reason_code"]) == ("REJECTED", "UNKNOWN_OPERATOR")
    assert status == 200
    assert usage["messages"] >= 2 and usage["parts"] >= 2 and usage["delivered"] >= 1
    assert usage["failed"] >= 1
    assert usage["quota_remaining"] == usage["daily_quota"] - usage["parts"]
