"""The tenant HTTP API against the real broker and a real server on a free port.

One prepared environment per module (topics with a run prefix, the sample configuration plus a
tenant with a tiny API rate); every test starts its own API process(es) in the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator

import pytest

from schemas.models import SubmitRequest
from smsflow.cli import main as smsflow_main
from smsflow.config.kafka_io import apply_config, read_config
from smsflow.config.models import PlatformConfig, Tenant
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import free_port, isolated_settings, read_all
from smsflow.devstack.lifeline import tied_env
from smsflow.settings import Settings
from smsflow.topics import CONFIG, SUBMITTED, apply_topics, topic_name
from tests.integration.api_server import PEPPER, api_settings, running_api
from tests.paths import PLATFORM_CONFIG

UK_MOBILE = "+447700900123"  # Ofcom drama range: an EE test prefix in the sample config


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("api"), "api")
    apply_topics(settings)
    config = load_yaml(PLATFORM_CONFIG)
    slow = Tenant(id="slow-co", name="Slow Co", rate_limit_pps=1, api_rate_per_s=1, api_burst=2)
    flip = Tenant(id="flip-co", name="Flip Co", rate_limit_pps=10)
    config = config.model_copy(update={"tenants": (*config.tenants, slow, flip)})
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG), config)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMSFLOW_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
        patch.setenv("SMSFLOW_TOPIC_PREFIX", settings.topic_prefix)
        patch.setenv("SMSFLOW_API_KEY_PEPPER", PEPPER)
        yield settings


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = smsflow_main(list(args))
    return code, out.getvalue()


def create_key(tenant: str) -> str:
    code, out = cli("tenants", "key", "create", tenant, "--quiet")
    assert code == 0
    return out.strip()


def submitted(settings: Settings) -> list[SubmitRequest]:
    return [SubmitRequest.from_avro(v) for v in read_all(settings, SUBMITTED)]


def message(**overrides: object) -> dict[str, object]:
    return {"destination": UK_MOBILE, "source": "ACME", "body": "hello", **overrides}


@pytest.mark.asyncio
async def test_single_message_is_stored_on_sms_submitted_before_202(env: Settings) -> None:
    key = create_key("acme-bank")
    async with running_api(env) as api:
        status, body, _ = await api.request(
            "POST", "/v1/messages", key=key, json=message(client_ref="r-1")
        )
    assert status == 202, body
    assert body["parts"] == 1
    stored = [r for r in submitted(env) if r.message_id == body["message_id"]]
    assert len(stored) == 1
    assert stored[0].tenant_id == "acme-bank"
    assert stored[0].destination == UK_MOBILE
    assert stored[0].client_ref == "r-1"


@pytest.mark.asyncio
async def test_every_refusal_has_its_status_and_code(env: Settings) -> None:
    key = create_key("shopfast")
    quarantined = create_key("suspended-co")
    cases: list[tuple[str, dict[str, object], int, str]] = [
        ("no key", {"json": message()}, 401, "UNAUTHENTICATED"),
        ("wrong key", {"json": message(), "key": key[:-4] + "AAAA"}, 401, "INVALID_API_KEY"),
        ("not a key", {"json": message(), "key": "hello"}, 401, "INVALID_API_KEY"),
        ("quarantined", {"json": message(), "key": quarantined}, 403, "TENANT_QUARANTINED"),
        ("bad json", {"data": b'{"destination": ', "key": key}, 400, "MALFORMED_JSON"),
        ("unknown field", {"json": message(colour="red"), "key": key}, 422, "INVALID_REQUEST"),
        ("missing field", {"json": {"destination": UK_MOBILE}, "key": key}, 422,
         "INVALID_REQUEST"),
        ("invalid number", {"json": message(destination="+44123"), "key": key}, 422,
         "INVALID_NUMBER"),
        ("fixed line", {"json": message(destination="+442079460000"), "key": key}, 422,
         "UNSUPPORTED_DESTINATION"),
        ("11 parts", {"json": message(body="x" * 153 * 10 + "y"), "key": key}, 422,
         "MESSAGE_TOO_LONG"),
        ("empty body", {"json": message(body=""), "key": key}, 422, "EMPTY_BODY"),
        ("bad sender", {"json": message(source="TwelveChars1"), "key": key}, 422,
         "INVALID_SOURCE"),
    ]
    async with running_api(env) as api:
        for name, kwargs, status, code in cases:
            got, body, _ = await api.request("POST", "/v1/messages", **kwargs)  # type: ignore[arg-type]
            assert (got, body.get("code")) == (status, code), (name, body)
            assert body["message"], name
        got, body, _ = await api.request(
            "POST", "/v1/messages/batch", key=key, json={"messages": [message()] * 1001}
        )
        assert (got, body["code"]) == (413, "BATCH_TOO_LARGE")
        got, body, _ = await api.request(
            "POST", "/v1/messages/batch", key=key,
            json={"messages": [message(), message(destination="+44123")]},
        )
        assert (got, body["code"]) == (422, "INVALID_MESSAGES")
        assert body["errors"] == [
            {"index": 1, "code": "INVALID_NUMBER", "message": body["errors"][0]["message"]}
        ]
        got, body, _ = await api.request("GET", "/v1/nothing", key=key)
        assert (got, body["code"]) == (404, "NOT_FOUND")


@pytest.mark.asyncio
async def test_over_the_api_rate_is_429_with_retry_after(env: Settings) -> None:
    key = create_key("slow-co")  # api_rate_per_s 1, api_burst 2
    async with running_api(env) as api:
        answers = [await api.request("POST", "/v1/messages", key=key, json=message())
                   for _ in range(3)]
        assert [a[0] for a in answers[:2]] == [202, 202]
        status, body, headers = answers[2]
        assert (status, body["code"]) == (429, "RATE_LIMITED")
        assert int(headers["Retry-After"]) >= 1
        await asyncio.sleep(int(headers["Retry-After"]))
        status, _, _ = await api.request("POST", "/v1/messages", key=key, json=message())
        assert status == 202


@pytest.mark.asyncio
async def test_batch_of_1000_is_stored_whole(env: Settings) -> None:
    key = create_key("promo-blast")
    batch = [message(body=f"offer {i}", message_type="MARKETING") for i in range(1000)]
    async with running_api(env) as api:
        status, body, _ = await api.request(
            "POST", "/v1/messages/batch", key=key, json={"messages": batch}
        )
    assert status == 202
    ids = {m["message_id"] for m in body["messages"]}
    assert len(ids) == 1000
    stored = [r for r in submitted(env) if r.message_id in ids]
    assert len(stored) == 1000
    assert {r.tenant_id for r in stored} == {"promo-blast"}


@pytest.mark.asyncio
async def test_revoked_key_stops_working_on_every_process_within_seconds(env: Settings) -> None:
    key = create_key("acme-bank")
    spare = create_key("acme-bank")  # rotation: both active at once
    key_id = key.split("_")[1]
    async with running_api(env) as first, running_api(env) as second:
        for api in (first, second):
            for presented in (key, spare):
                status, _, _ = await api.request("POST", "/v1/messages", key=presented,
                                                 json=message())
                assert status == 202
        code, out = cli("tenants", "key", "list", "acme-bank")
        assert code == 0 and key_id in out and key not in out
        assert cli("tenants", "key", "revoke", "acme-bank", key_id, "--reason", "test")[0] == 0
        revoked_at = time.monotonic()
        pending = {id(first): first, id(second): second}
        while pending and time.monotonic() - revoked_at < 5.0:
            for name, api in list(pending.items()):
                status, body, _ = await api.request("POST", "/v1/messages", key=key,
                                                    json=message())
                if status == 401:
                    assert body["code"] == "INVALID_API_KEY"
                    del pending[name]
            await asyncio.sleep(0.05)
        assert not pending, "a process still accepted the revoked key after 5 s"
        for api in (first, second):
            status, _, _ = await api.request("POST", "/v1/messages", key=spare, json=message())
            assert status == 202


@pytest.mark.asyncio
async def test_idempotent_retry_returns_the_first_answer_across_a_restart(env: Settings
                                                                          ) -> None:
    key = create_key("shopfast")
    retry = {"Idempotency-Key": f"order-{time.time_ns()}"}
    async with running_api(env) as api:
        first = await api.request("POST", "/v1/messages", key=key, json=message(), headers=retry)
        again = await api.request("POST", "/v1/messages", key=key, json=message(), headers=retry)
        concurrent = await asyncio.gather(*(
            api.request("POST", "/v1/messages", key=key, json=message(), headers=retry)
            for _ in range(5)
        ))
    assert first[0] == 202
    assert again[:2] == first[:2]
    assert all(answer[:2] == first[:2] for answer in concurrent)
    async with running_api(env) as restarted:
        after = await restarted.request("POST", "/v1/messages", key=key, json=message(),
                                        headers=retry)
        reused = await restarted.request("POST", "/v1/messages", key=key,
                                         json=message(body="other"), headers=retry)
    assert after[:2] == first[:2]
    assert (reused[0], reused[1]["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    copies = [r for r in submitted(env) if r.message_id == first[1]["message_id"]]
    assert len(copies) == 1


@pytest.mark.asyncio
async def test_health_readiness_and_metrics(env: Settings) -> None:
    key = create_key("acme-bank")
    async with running_api(env) as api:
        assert (await api.request("GET", "/healthz"))[0] == 200
        deadline = time.monotonic() + 10  # the status store may still be replaying the day
        while True:
            status, body, _ = await api.request("GET", "/readyz")
            assert status == 200  # ready for POSTs either way
            checks = body["checks"]
            if (checks["status"] and checks["inbound"]) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert body["checks"] == {"kafka": True, "keys": True, "config": True,
                                  "idempotency": True, "status": True, "inbound": True}
        await api.request("POST", "/v1/messages", key=key, json=message())
        await api.request("POST", "/v1/messages", json=message())
        async with api.session.get(api.base_url + "/metrics") as response:
            text = await response.text()
    assert 'smsflow_api_requests_total{route="/v1/messages",status_class="2xx"} 1.0' in text
    assert 'smsflow_api_requests_total{route="/v1/messages",status_class="4xx"} 1.0' in text
    assert 'smsflow_api_request_duration_seconds_bucket{le="0.05",route="/v1/messages"}' in text
    assert "smsflow_api_requests_in_flight" in text
    assert 'smsflow_api_errors_total{code="UNAUTHENTICATED"} 1.0' in text


@pytest.mark.asyncio
async def test_bodies_over_the_size_cap_are_413_declared_or_chunked(env: Settings) -> None:
    key = create_key("shopfast")
    big = b'{"messages": [' + b", ".join([b'{"destination": "+447700900123", '
                                          b'"source": "ACME", "body": "hi"}'] * 40) + b"]}"
    async with running_api(env, api_settings(max_body_bytes=1_000)) as api:
        status, body, _ = await api.request("POST", "/v1/messages/batch", key=key, data=big)
        assert (status, body["code"]) == (413, "PAYLOAD_TOO_LARGE")

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 256):
                yield big[start:start + 256]

        async with api.session.post(
            api.base_url + "/v1/messages/batch", data=chunks(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        ) as response:
            assert response.status == 413
            assert (await response.json())["code"] == "PAYLOAD_TOO_LARGE"
        small = {"messages": [message()] * 2}
        status, _, _ = await api.request("POST", "/v1/messages/batch", key=key, json=small)
        assert status == 202


def test_smsflow_api_command_serves_with_two_workers(env: Settings) -> None:
    """The CLI wiring: uvicorn's factory reads the environment in each worker process."""
    key = create_key("acme-bank")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "smsflow.cli", "api", "--port", str(port), "--workers", "2",
         "--log-level", "warning"],
        env=tied_env({**os.environ, "SMSFLOW_API_INSTANCES": "2"}),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert process.poll() is None, "smsflow api exited"
            assert time.monotonic() < deadline, "smsflow api did not become ready"
            time.sleep(0.2)
        request = urllib.request.Request(
            base + "/v1/messages", method="POST", data=json.dumps(message()).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                     "Idempotency-Key": f"two-workers-{port}"},
        )
        while True:
            # /readyz answered from one process; the other may still be loading and answer
            # 503 NOT_READY, as a client retrying with its Idempotency-Key would see.
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 202
                    accepted = json.loads(response.read())
                    break
            except urllib.error.HTTPError as refused:
                assert refused.code == 503, refused.read()
                assert time.monotonic() < deadline, "a process stayed not ready"
                time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert [r for r in submitted(env) if r.message_id == accepted["message_id"]]


@pytest.mark.asyncio
async def test_status_and_usage_are_the_callers_own(env: Settings) -> None:
    key = create_key("shopfast")
    other = create_key("acme-bank")
    async with running_api(env) as api:
        before = (await api.request("GET", "/v1/usage", key=key))[1]
        status, accepted, _ = await api.request(
            "POST", "/v1/messages", key=key, json=message(body="x" * 200, client_ref="c-9")
        )
        assert status == 202
        path = f"/v1/messages/{accepted['message_id']}"
        status, body = await api.status_once_known(accepted["message_id"], key)
        assert status == 200, body
        assert body["state"] == "SUBMITTED" and body["terminal"] is False
        assert (body["destination"], body["client_ref"]) == (UK_MOBILE, "c-9")
        foreign = await api.request("GET", path, key=other)
        assert (foreign[0], foreign[1]["code"]) == (404, "NOT_FOUND")
        unknown = await api.request("GET", "/v1/messages/no-such-id", key=key)
        assert (unknown[0], unknown[1]["code"]) == (404, "NOT_FOUND")
        status, usage, _ = await api.request("GET", "/v1/usage", key=key)
    assert status == 200
    assert usage["messages"] == before["messages"] + 1
    assert usage["tenant_id"] == "shopfast" and usage["rate_limit_pps"] == 300
    assert usage["api_rate_per_s"] == 3000 and usage["daily_quota"] is None


@pytest.mark.asyncio
async def test_a_quarantine_applied_to_the_configuration_refuses_within_seconds(
    env: Settings,
) -> None:
    key = create_key("flip-co")
    config_topic = topic_name(env, CONFIG)
    current = read_config(env.kafka_bootstrap, config_topic)

    def with_flip(quarantined: bool) -> PlatformConfig:
        tenants = tuple(
            t.model_copy(update={"quarantined": quarantined}) if t.id == "flip-co" else t
            for t in current.tenants
        )
        return current.model_copy(update={"tenants": tenants})

    async def answer_within(code: int, timeout_s: float) -> float:
        started = time.monotonic()
        while True:
            status, _, _ = await api.request("POST", "/v1/messages", key=key, json=message())
            if status == code:
                return time.monotonic() - started
            assert time.monotonic() - started < timeout_s, f"still {status}"
            await asyncio.sleep(0.05)

    async with running_api(env) as api:
        assert await answer_within(202, 0.0) == pytest.approx(0, abs=1)
        await asyncio.to_thread(apply_config, env.kafka_bootstrap, config_topic, with_flip(True))
        await answer_within(403, 5.0)
        await asyncio.to_thread(apply_config, env.kafka_bootstrap, config_topic, with_flip(False))
        await answer_within(202, 5.0)


def test_key_commands_refuse_unknown_tenants_and_keys(env: Settings) -> None:
    assert cli("tenants", "key", "create", "nobody")[0] == 2
    assert cli("tenants", "key", "revoke", "acme-bank", "0000000000000000")[0] == 2
    key = create_key("promo-blast")
    key_id = key.split("_")[1]
    assert cli("tenants", "key", "revoke", "shopfast", key_id)[0] == 2  # not shopfast's key
    assert cli("tenants", "key", "revoke", "promo-blast", key_id)[0] == 0
    code, out = cli("tenants", "key", "revoke", "promo-blast", key_id)
    assert code == 0 and "already revoked" in out
    code, out = cli("tenants", "key", "list", "promo-blast")
    assert code == 0 and f"{key_id}  promo-blast" in out and "revoked" in out


@pytest.mark.asyncio
async def test_a_bug_is_answered_as_json_500(env: Settings) -> None:
    key = create_key("shopfast")

    def broken(*_args: object, **_kwargs: object) -> float | None:
        raise RuntimeError("a bug")

    async with running_api(env) as api:
        api.runtime.admission.admit = broken  # type: ignore[method-assign]
        status, body, _ = await api.request("POST", "/v1/messages", key=key, json=message())
    assert (status, body["code"]) == (500, "INTERNAL_ERROR")


@pytest.mark.asyncio
async def test_messages_kafka_did_not_store_are_503_and_not_acknowledged(env: Settings) -> None:
    key = create_key("shopfast")
    async with running_api(env, api_settings(produce_timeout_s=2.0)) as api:
        # Nothing acknowledges a record for a topic that does not exist (no auto-creation on
        # this broker): the produce times out, as in a Kafka outage.
        api.runtime.out.submitted.topic = f"{env.topic_prefix}missing-topic"
        started = time.monotonic()
        status, body, _ = await api.request("POST", "/v1/messages", key=key, json=message(),
                                            headers={"Idempotency-Key": "outage-1"})
        assert (status, body["code"]) == (503, "KAFKA_UNAVAILABLE")
        assert time.monotonic() - started < 10
        api.runtime.out.submitted.topic = topic_name(env, SUBMITTED)
        status, body, _ = await api.request("POST", "/v1/messages", key=key, json=message(),
                                            headers={"Idempotency-Key": "outage-1"})
        assert status == 202  # the refused attempt stored no answer: the retry runs afresh
