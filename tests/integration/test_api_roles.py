"""Role ``submit``: a process without stores forwards the store-backed GET routes to a process
of role ``all``, with the same answers a single process gives (tenant-scoped, other tenant's id
404), and answers 503 for them when no status process is configured."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack

import pytest
from prometheus_client.parser import text_string_to_metric_families

from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import isolated_settings
from smsflow.settings import Settings
from smsflow.topics import CONFIG, apply_topics, topic_name
from tests.integration.api_server import PEPPER, api_settings, running_api
from tests.integration.test_api import create_key, message
from tests.paths import PLATFORM_CONFIG


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("roles"), "roles")
    apply_topics(settings)
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG), load_yaml(PLATFORM_CONFIG))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMSFLOW_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
        patch.setenv("SMSFLOW_TOPIC_PREFIX", settings.topic_prefix)
        patch.setenv("SMSFLOW_API_KEY_PEPPER", PEPPER)
        yield settings


@pytest.mark.asyncio
async def test_submit_role_forwards_status_usage_and_inbound_to_the_status_role(
    env: Settings,
) -> None:
    key = create_key("shopfast")
    other = create_key("acme-bank")
    async with running_api(env) as status_api, running_api(
        env, api_settings(role="submit", status_url=status_api.base_url)
    ) as api:
        assert api.runtime.status is None and api.runtime.inbound is None  # no store here
        # /readyz shows no check of a store it does not keep (they would stay false forever).
        status, ready, _ = await api.request("GET", "/readyz")
        assert (status, ready["checks"]) == (200, {"kafka": True, "keys": True, "config": True,
                                                   "idempotency": True}), ready
        status, accepted, _ = await api.request(
            "POST", "/v1/messages", key=key, json=message(body="x" * 200, client_ref="c-7")
        )
        assert status == 202
        path = f"/v1/messages/{accepted['message_id']}"
        status, body = await api.status_once_known(accepted["message_id"], key)
        assert status == 200, body
        assert body == (await status_api.request("GET", path, key=key))[1]
        assert (body["state"], body["client_ref"]) == ("SUBMITTED", "c-7")
        foreign = await api.request("GET", path, key=other)
        assert (foreign[0], foreign[1]["code"]) == (404, "NOT_FOUND")
        unauthenticated = await api.request("GET", path, key="smsf_nope")
        assert (unauthenticated[0], unauthenticated[1]["code"]) == (401, "INVALID_API_KEY")
        status, usage, _ = await api.request("GET", "/v1/usage", key=key)
        assert (status, usage["tenant_id"]) == (200, "shopfast") and usage["messages"] >= 1
        status, page, _ = await api.request("GET", "/v1/inbound?limit=5", key=key)
        assert status == 200 and page["messages"] == []
        status, refused, _ = await api.request("GET", "/v1/inbound?limit=0", key=key)
        assert (status, refused["code"]) == (422, "INVALID_REQUEST")


@pytest.mark.asyncio
async def test_submit_role_without_a_status_process_answers_503_for_the_stores(
    env: Settings,
) -> None:
    key = create_key("shopfast")
    async with running_api(env, api_settings(role="submit")) as api:
        status, accepted, _ = await api.request("POST", "/v1/messages", key=key, json=message())
        assert status == 202
        for path in (f"/v1/messages/{accepted['message_id']}", "/v1/usage", "/v1/inbound"):
            status, body, _ = await api.request("GET", path, key=key)
            assert (status, body["code"]) == (503, "NOT_READY"), path


@pytest.mark.asyncio
async def test_submit_role_whose_status_process_stops_answers_503_and_counts_it_per_route(
    env: Settings,
) -> None:
    """The status process goes away under a running submit process: the three forwarded GETs
    answer 503 NOT_READY and /metrics counts a 5xx for each route template, which is what
    ApiStatusQueriesFailing (ops/prometheus/rules.yml) reads; POSTs go on."""
    key = create_key("shopfast")
    status_stack = AsyncExitStack()
    status_api = await status_stack.enter_async_context(running_api(env))
    try:
        async with running_api(
            env, api_settings(role="submit", status_url=status_api.base_url)
        ) as api:
            status, usage, _ = await api.request("GET", "/v1/usage", key=key)
            assert status == 200, usage  # forwarded while the status process runs
            await status_stack.aclose()
            status, accepted, _ = await api.request(
                "POST", "/v1/messages", key=key, json=message()
            )
            assert status == 202
            for path in (f"/v1/messages/{accepted['message_id']}", "/v1/usage", "/v1/inbound"):
                status, body, _ = await api.request("GET", path, key=key)
                assert (status, body["code"]) == (503, "NOT_READY"), path
                assert body["message"].startswith("the status service did not answer"), body
            async with api.session.get(api.base_url + "/metrics") as response:
                exposition = await response.text()
    finally:
        await status_stack.aclose()
    requests = _samples(exposition, "smsflow_api_requests_total")
    for route in ("/v1/messages/{message_id}", "/v1/usage", "/v1/inbound"):
        assert requests.get((route, "5xx")) == 1.0, (route, requests)
    assert requests.get(("/v1/usage", "2xx")) == 1.0, requests
    assert requests.get(("/v1/messages", "2xx")) == 1.0, requests


def _samples(exposition: str, name: str) -> dict[tuple[str, str], float]:
    """``name``'s samples in a /metrics text, by (route, status_class)."""
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                values[(sample.labels["route"], sample.labels["status_class"])] = sample.value
    return values
