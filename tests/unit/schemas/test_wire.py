"""Confluent wire format (schemas/wire.py): framing, both-framings decoding, reason codes, the
HTTP client's error mapping, and the local registry's pure helpers. No registry runs here: the
codec is driven through an in-memory RegistryClient and the HTTP client against a tiny stdlib
server; tests/integration/test_schema_registry.py does the same against a real registry."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import struct
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fastavro
import pytest

from schemas import wire
from schemas.codec import DecodeError
from schemas.models import ALL_MODELS, AvroModel
from schemas.registry import AvroContract, contracts
from schemas.wire import (
    HEADER_LEN,
    MAGIC,
    RegistryUnavailableError,
    SchemaRegistryClient,
    SchemaRegistryError,
    WireCodec,
    frame,
    record_subject,
    schema_text,
    topic_subject,
    unframe,
)

NOW = datetime(2026, 11, 26, 12, 0, 0, 123000, tzinfo=UTC)
MODELS: dict[str, type[AvroModel]] = {model.avro_name: model for model in ALL_MODELS}


# --------------------------------------------------------------------------------------------
# Sample data: one record per contract, every field set (shared with the integration tests)
# --------------------------------------------------------------------------------------------


def sample_record(schema: Any) -> dict[str, Any]:
    """A datum for a standalone record schema: every field set, non-null union branches."""
    named: dict[str, Any] = {}

    def value(node: Any, namespace: str) -> Any:
        if isinstance(node, list):
            return value(node[-1], namespace)
        if isinstance(node, str):
            primitives = {
                "string": "s-ü✓", "int": 7, "long": 8, "boolean": True, "double": 1.5,
                "float": 2.5, "bytes": b"\x00\xffb", "null": None,
            }
            if node in primitives:
                return primitives[node]
            full = node if "." in node else f"{namespace}.{node}"
            return value(named[full], namespace)
        if node.get("logicalType") == "timestamp-millis":
            return NOW
        kind = node["type"]
        if kind in ("record", "enum"):
            name = node["name"]
            full = name if "." in name else f"{node.get('namespace', namespace)}.{name}"
            named[full] = node
            inner = full.rsplit(".", 1)[0]
            if kind == "enum":
                return node["symbols"][0]
            return {f["name"]: value(f["type"], inner) for f in node["fields"]}
        if kind == "array":
            return [value(node["items"], namespace), value(node["items"], namespace)]
        if kind == "map":
            return {"k": value(node["values"], namespace)}
        return value(kind, namespace)

    result: dict[str, Any] = value(schema, "io.smsflow")
    return result


def model_sample(name: str) -> AvroModel:
    """The sample as the contract's pydantic model (validates it)."""
    return MODELS[name].model_validate(sample_record(contracts()[name].schema_json))


def older_schema(contract: AvroContract, drop: str) -> dict[str, Any]:
    """The contract without one optional field: what an older producer would have written."""
    schema = copy.deepcopy(contract.schema_json)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != drop]
    return schema


def newer_schema(contract: AvroContract) -> dict[str, Any]:
    """The contract plus a field this reader does not know: what a newer producer writes."""
    schema = copy.deepcopy(contract.schema_json)
    schema["fields"].append({"name": "added_later", "type": "string", "default": ""})
    return schema


def avro_body(schema: Any, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema, _force=True), record)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# An in-memory registry (for codec tests; the real one is in the integration tests)
# --------------------------------------------------------------------------------------------


class MemoryRegistry:
    """Confluent semantics: one id per distinct schema text, ids from 1, subjects list ids."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.fail: SchemaRegistryError | None = None

    def _check(self, call: str, arg: Any) -> None:
        self.calls.append((call, arg))
        if self.fail is not None:
            raise self.fail

    def register(self, subject: str, schema: str) -> int:
        self._check("register", subject)
        known = {text: schema_id for schema_id, text in self.schemas.items()}
        schema_id = known.get(schema) or len(self.schemas) + 1
        self.schemas[schema_id] = schema
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def lookup(self, subject: str, schema: str) -> int:
        self._check("lookup", subject)
        for schema_id in self.subjects.get(subject, []):
            if self.schemas[schema_id] == schema:
                return schema_id
        raise SchemaRegistryError(wire.SCHEMA_NOT_REGISTERED, f"{subject} lacks it")

    def get_schema(self, schema_id: int) -> str:
        self._check("get_schema", schema_id)
        try:
            return self.schemas[schema_id]
        except KeyError:
            raise SchemaRegistryError(wire.SCHEMA_NOT_FOUND, f"no id {schema_id}") from None


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry()


def _codec(name: str, registry: MemoryRegistry, **kwargs: Any) -> WireCodec:
    return WireCodec(contracts()[name], registry, **kwargs)


# --------------------------------------------------------------------------------------------
# Framing and naming
# --------------------------------------------------------------------------------------------


def test_frame_is_magic_byte_big_endian_id_and_body() -> None:
    assert frame(0x01020304, b"body") == b"\x00\x01\x02\x03\x04body"
    assert unframe(b"\x00\x00\x00\x01\x00rest") == (256, b"rest")
    assert HEADER_LEN == 5
    assert MAGIC == b"\x00"


@pytest.mark.parametrize("schema_id", [-1, 2**31])
def test_frame_rejects_ids_outside_java_int(schema_id: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        frame(schema_id, b"")


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00\x01", b"\xc3\x01\x00\x00\x00"])
def test_unframe_rejects_short_or_foreign_data(data: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        unframe(data)
    assert caught.value.reason_code == "UNDECODABLE"


def test_subject_names() -> None:
    assert topic_subject("sms.submitted") == "sms.submitted-value"
    assert topic_subject("sms.submitted", is_key=True) == "sms.submitted-key"
    assert record_subject(contracts()["SubmitRequest"]) == "io.smsflow.SubmitRequest"
    with pytest.raises(ValueError):
        topic_subject("")
    codec_ = WireCodec(contracts()["RouteHealth"], MemoryRegistry())
    assert codec_.subject("t") == "t-value"
    assert codec_.subject() == "io.smsflow.RouteHealth"


@pytest.mark.parametrize("name", sorted(contracts()))
def test_registered_text_is_the_standalone_schema_compact_and_stable(name: str) -> None:
    text = schema_text(contracts()[name])
    assert json.loads(text) == contracts()[name].schema_json
    assert text == schema_text(contracts()[name])
    compact = json.dumps(contracts()[name].schema_json, separators=(",", ":"), ensure_ascii=False)
    assert text == compact  # Apicurio dedupes by raw text: it must never vary


# --------------------------------------------------------------------------------------------
# Encode / decode
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(contracts()))
def test_every_contract_round_trips_in_confluent_framing(
    name: str, registry: MemoryRegistry
) -> None:
    model = model_sample(name)
    record = model.model_dump(mode="python")
    data = _codec(name, registry).encode(record, "topic-a")
    schema_id = registry.subjects["topic-a-value"][0]
    assert data[:HEADER_LEN] == b"\x00" + struct.pack(">I", schema_id)
    # The body is plain Avro binary: identical to the single-object body after its header.
    assert data[HEADER_LEN:] == model.to_avro()[10:]
    fresh = _codec(name, registry)  # another process: resolves the id through the registry
    assert MODELS[name].model_validate(fresh.decode(data)) == model


def test_encode_registers_once_per_subject(registry: MemoryRegistry) -> None:
    codec_ = _codec("RouteHealth", registry)
    record = model_sample("RouteHealth").model_dump(mode="python")
    first = codec_.encode(record, "a")
    codec_.encode(record, "a")
    other = codec_.encode(record, "b")
    codec_.encode(record)
    assert [c for c in registry.calls if c[0] == "register"] == [
        ("register", "a-value"), ("register", "b-value"), ("register", "io.smsflow.RouteHealth"),
    ]  # one call per subject: the codec keeps the id it encodes with
    assert first[:HEADER_LEN] == other[:HEADER_LEN]  # same schema text, same id


def test_decoding_own_records_needs_no_registry_call(registry: MemoryRegistry) -> None:
    codec_ = _codec("RouteHealth", registry)
    data = codec_.encode(model_sample("RouteHealth").model_dump(mode="python"), "t")
    codec_.decode(data)
    assert not [c for c in registry.calls if c[0] == "get_schema"]


def test_unknown_ids_are_fetched_once_and_cached(registry: MemoryRegistry) -> None:
    data = _codec("RouteHealth", registry).encode(
        model_sample("RouteHealth").model_dump(mode="python"), "t"
    )
    reader = _codec("RouteHealth", registry)
    for _ in range(3):
        reader.decode(data)
    assert [c for c in registry.calls if c[0] == "get_schema"] == [("get_schema", 1)]


@pytest.mark.parametrize("name", sorted(contracts()))
def test_single_object_records_still_decode(name: str, registry: MemoryRegistry) -> None:
    model = model_sample(name)
    assert MODELS[name].model_validate(_codec(name, registry).decode(model.to_avro())) == model
    assert registry.calls == []


def test_auto_register_off_looks_the_schema_up(registry: MemoryRegistry) -> None:
    record = model_sample("RouteHealth").model_dump(mode="python")
    strict = _codec("RouteHealth", registry, auto_register=False)
    with pytest.raises(SchemaRegistryError) as caught:
        strict.encode(record, "t")
    assert caught.value.reason_code == "SCHEMA_NOT_REGISTERED"
    _codec("RouteHealth", registry).encode(record, "t")  # registered by someone allowed to
    assert strict.decode(strict.encode(record, "t"))["route_id"] == record["route_id"]


def test_older_writer_resolves_into_current_reader(registry: MemoryRegistry) -> None:
    contract = contracts()["SubmitRequest"]
    old = older_schema(contract, "client_ref")
    old_id = registry.register("t-value", json.dumps(old))
    record = sample_record(old)
    decoded = _codec("SubmitRequest", registry).decode(frame(old_id, avro_body(old, record)))
    assert decoded["client_ref"] is None  # the reader's default
    assert decoded["message_id"] == record["message_id"]


def test_newer_writer_extra_field_is_skipped(registry: MemoryRegistry) -> None:
    new = newer_schema(contracts()["RouteHealth"])
    new_id = registry.register("t-value", json.dumps(new))
    record = {**sample_record(new), "added_later": "x"}
    decoded = _codec("RouteHealth", registry).decode(frame(new_id, avro_body(new, record)))
    assert "added_later" not in decoded
    assert decoded["score"] == record["score"]


# --------------------------------------------------------------------------------------------
# Reason codes
# --------------------------------------------------------------------------------------------


def _decode_error(codec_: WireCodec, data: bytes | None) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        codec_.decode(data)
    return caught.value


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "EMPTY_RECORD"),
        (b"", "EMPTY_RECORD"),
        (b"\x01\x00\x00\x00\x01", "UNDECODABLE"),  # neither framing
        (b"{\"json\": 1}", "UNDECODABLE"),
        (b"\x00\x00\x00", "UNDECODABLE"),  # truncated header
        (b"\xc3\x01\x00", "UNDECODABLE"),  # truncated single-object header
        # Magic 00, then an id beyond the registry's int range: refused without asking the
        # registry (which answers a bare 404, an "outage" the reader would wait on forever).
        (b"\x00\xffnot avro at all", "UNDECODABLE"),
    ],
)
def test_malformed_input(data: bytes | None, reason: str, registry: MemoryRegistry) -> None:
    assert _decode_error(_codec("RouteHealth", registry), data).reason_code == reason


def test_truncated_and_padded_bodies_are_undecodable(registry: MemoryRegistry) -> None:
    codec_ = _codec("RouteHealth", registry)
    data = codec_.encode(model_sample("RouteHealth").model_dump(mode="python"), "t")
    assert _decode_error(codec_, data[:-3]).reason_code == "UNDECODABLE"
    assert _decode_error(codec_, data + b"\x00").reason_code == "UNDECODABLE"


def test_unknown_id_is_a_schema_mismatch(registry: MemoryRegistry) -> None:
    error = _decode_error(_codec("RouteHealth", registry), frame(424242, b"\x02"))
    assert error.reason_code == "SCHEMA_MISMATCH"
    assert not isinstance(error, RegistryUnavailableError)
    assert "424242" in str(error)


def test_record_of_another_contract_is_a_schema_mismatch(registry: MemoryRegistry) -> None:
    data = _codec("RouteHealth", registry).encode(
        model_sample("RouteHealth").model_dump(mode="python"), "t"
    )
    error = _decode_error(_codec("SubmitRequest", registry), data)
    assert error.reason_code == "SCHEMA_MISMATCH"
    assert "io.smsflow.RouteHealth" in str(error)


def test_writer_schema_that_is_not_avro_is_a_schema_mismatch(registry: MemoryRegistry) -> None:
    registry.schemas[9] = "this is not JSON"
    registry.schemas[10] = '{"type": "no-such-type"}'
    for schema_id in (9, 10):
        error = _decode_error(_codec("RouteHealth", registry), frame(schema_id, b"\x00"))
        assert error.reason_code == "SCHEMA_MISMATCH"


def test_registry_down_is_transient_not_a_decode_error(registry: MemoryRegistry) -> None:
    data = _codec("RouteHealth", MemoryRegistry()).encode(
        model_sample("RouteHealth").model_dump(mode="python"), "t"
    )
    registry.schemas[1] = schema_text(contracts()["RouteHealth"])
    registry.fail = SchemaRegistryError(wire.REGISTRY_UNAVAILABLE, "connection refused")
    reader = _codec("RouteHealth", registry)
    with pytest.raises(RegistryUnavailableError) as caught:
        reader.decode(data)
    error = caught.value
    # Transient, and not catchable as the permanent error: no caller may reject or skip on it.
    assert not isinstance(error, (DecodeError, ValueError))
    assert error.reason_code == "REGISTRY_UNAVAILABLE"
    registry.fail = None  # back up: the failure was not cached
    assert reader.decode(data)["route_id"] == "s-ü✓"


def test_registry_down_on_encode_raises_registry_error(registry: MemoryRegistry) -> None:
    registry.fail = SchemaRegistryError(wire.REGISTRY_UNAVAILABLE, "connection refused")
    with pytest.raises(SchemaRegistryError) as caught:
        _codec("RouteHealth", registry).encode(
            model_sample("RouteHealth").model_dump(mode="python"), "t"
        )
    assert caught.value.reason_code == "REGISTRY_UNAVAILABLE"


# --------------------------------------------------------------------------------------------
# Environment wiring
# --------------------------------------------------------------------------------------------


def test_wire_codec_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    wire.reset_cache()
    monkeypatch.delenv(wire.ENV_URL, raising=False)
    assert wire.wire_codec("SubmitRequest") is None
    monkeypatch.setenv(wire.ENV_URL, "http://127.0.0.1:1/apis/ccompat/v7/")
    assert wire.wire_codec("SubmitRequest") is None  # read once per process ...
    wire.reset_cache()  # ... or reset
    found = wire.wire_codec("SubmitRequest")
    assert found is not None and found is wire.wire_codec("SubmitRequest")
    assert isinstance(found.client, SchemaRegistryClient)
    assert found.client.url == "http://127.0.0.1:1/apis/ccompat/v7"
    assert found.auto_register
    monkeypatch.setenv(wire.ENV_AUTO_REGISTER, "false")
    assert wire.wire_codec("SubmitRequest") is found  # the environment is read once
    wire.reset_cache()  # ... and again after a reset
    found = wire.wire_codec("SubmitRequest")
    assert found is not None
    strict = wire.wire_codec("SubmitRequest")
    assert strict is not None and not strict.auto_register
    assert strict.client is found.client  # one client (one cache) per URL
    wire.reset_cache()
    monkeypatch.delenv(wire.ENV_URL)
    assert wire.prime([("sms.submitted", "SubmitRequest")]) == {}  # no registry: nothing to do


# --------------------------------------------------------------------------------------------
# The HTTP client, against a stdlib server on loopback
# --------------------------------------------------------------------------------------------

Reply = tuple[int, Any]


class _Handler(BaseHTTPRequestHandler):
    routes: dict[tuple[str, str], Callable[[], Reply]]
    seen: list[tuple[str, str, dict[str, str], bytes]]

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, dict(self.headers), body))
        route = self.routes.get((self.command, self.path))
        status, payload = route() if route else (404, {"error_code": 404, "message": "no route"})
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client timed out
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_registry() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"routes": {}, "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _client_error(call: Callable[[], Any]) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("url", ["ftp://host/x", "127.0.0.1:8081", "http:///nohost", ""])
def test_client_rejects_non_http_urls(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        SchemaRegistryClient(url)


def test_client_register_and_get_with_caching(http_registry: tuple[str, Any]) -> None:
    url, handler = http_registry
    register = ("POST", "/api/subjects/sms.submitted-value/versions")
    handler.routes[register] = lambda: (200, {"id": 3})
    handler.routes[("GET", "/api/schemas/ids/4")] = lambda: (200, {"schema": '"string"'})
    client = SchemaRegistryClient(url + "/")
    assert client.url == url
    assert client.register("sms.submitted-value", '"long"') == 3
    assert client.register("sms.submitted-value", '"long"') == 3
    assert client.get_schema(3) == '"long"'  # known from the registration: no request
    assert client.get_schema(4) == '"string"'
    assert client.get_schema(4) == '"string"'
    assert [(m, p) for m, p, _, _ in handler.seen] == [
        ("POST", "/api/subjects/sms.submitted-value/versions"),
        ("GET", "/api/schemas/ids/4"),
    ]
    _, _, headers, body = handler.seen[0]
    assert json.loads(body) == {"schema": '"long"'}
    assert headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
    assert "Authorization" not in headers


def test_client_sends_url_credentials_as_basic_auth(http_registry: tuple[str, Any]) -> None:
    url, handler = http_registry
    handler.routes[("GET", "/api/schemas/ids/1")] = lambda: (200, {"schema": '"string"'})
    client = SchemaRegistryClient(url.replace("http://", "http://us%40er:p%3Ass@"))
    assert "us%40er" not in client.url and "p%3Ass" not in repr(client)
    client.get_schema(1)
    assert handler.seen[0][2]["Authorization"] == "Basic dXNAZXI6cDpzcw=="  # us@er:p:ss


def test_client_quotes_subjects(http_registry: tuple[str, Any]) -> None:
    url, handler = http_registry
    handler.routes[("POST", "/api/subjects/a%2Fb-value")] = lambda: (200, {"id": 1})
    assert SchemaRegistryClient(url).lookup("a/b-value", '"string"') == 1


@pytest.mark.parametrize(
    ("status", "payload", "reason"),
    [
        (404, {"error_code": 40403, "message": "Schema not found"}, "SCHEMA_NOT_FOUND"),
        (404, {"error_code": 404, "message": "no such path"}, "REGISTRY_UNAVAILABLE"),
        (404, b"<html>not found</html>", "REGISTRY_UNAVAILABLE"),
        (500, {"error_code": 50001, "message": "store error"}, "REGISTRY_UNAVAILABLE"),
        (503, b"", "REGISTRY_UNAVAILABLE"),
        (401, {"error_code": 401, "message": "unauthorized"}, "REGISTRY_UNAVAILABLE"),
        (200, b"not json", "REGISTRY_UNAVAILABLE"),
        (200, [1, 2], "REGISTRY_UNAVAILABLE"),
        (200, {"schemaType": "PROTOBUF", "schema": "syntax = 'proto3';"}, "SCHEMA_NOT_FOUND"),
        (200, {"schema": '"string"', "references": [{"name": "x"}]}, "SCHEMA_NOT_FOUND"),
    ],
)
def test_client_get_schema_error_mapping(
    http_registry: tuple[str, Any], status: int, payload: Any, reason: str
) -> None:
    url, handler = http_registry
    handler.routes[("GET", "/api/schemas/ids/1")] = lambda: (status, payload)
    error = _client_error(lambda: SchemaRegistryClient(url).get_schema(1))
    assert error.reason_code == reason


@pytest.mark.parametrize(
    ("status", "payload", "reason"),
    [
        (409, {"error_code": 409, "message": "incompatible"}, "SCHEMA_REJECTED"),
        (422, {"error_code": 42201, "message": "invalid schema"}, "SCHEMA_REJECTED"),
        (200, {"id": "7"}, "REGISTRY_UNAVAILABLE"),
        (200, {"id": True}, "REGISTRY_UNAVAILABLE"),
    ],
)
def test_client_register_error_mapping(
    http_registry: tuple[str, Any], status: int, payload: Any, reason: str
) -> None:
    url, handler = http_registry
    handler.routes[("POST", "/api/subjects/s/versions")] = lambda: (status, payload)
    error = _client_error(lambda: SchemaRegistryClient(url).register("s", '"string"'))
    assert error.reason_code == reason
    assert error.status == (status if status >= 400 else None)


def test_client_lookup_of_unknown_schema(http_registry: tuple[str, Any]) -> None:
    url, handler = http_registry
    handler.routes[("POST", "/api/subjects/s")] = lambda: (404, {"error_code": 40403})
    error = _client_error(lambda: SchemaRegistryClient(url).lookup("s", '"string"'))
    assert error.reason_code == "SCHEMA_NOT_REGISTERED"


def test_client_timeout_is_unavailable(http_registry: tuple[str, Any]) -> None:
    url, handler = http_registry

    def slow() -> Reply:
        time.sleep(1.0)
        return 200, {"schema": '"string"'}

    handler.routes[("GET", "/api/schemas/ids/1")] = slow
    error = _client_error(lambda: SchemaRegistryClient(url, timeout_s=0.2).get_schema(1))
    assert error.reason_code == "REGISTRY_UNAVAILABLE"


def test_client_connection_refused_is_unavailable() -> None:
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = SchemaRegistryClient(f"http://127.0.0.1:{port}")
    assert _client_error(lambda: client.get_schema(1)).reason_code == "REGISTRY_UNAVAILABLE"
    error = _client_error(lambda: client.register("s", '"string"'))
    assert error.reason_code == "REGISTRY_UNAVAILABLE"
