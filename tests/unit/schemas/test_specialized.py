"""The generated readers and writers (schemas/specialized.py) against fastavro, per contract.

Same bytes for the same record, same record for the same bytes, and on a corrupt or truncated
body the same outcome: both refuse it, or both read the same value to the same position.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import specialized
from schemas.codec import CORRUPT_BODY_ERRORS, DecodeError, codec
from schemas.registry import contracts
from tests.native_source import source_module

NAMES = sorted(contracts())
#: The module as installed (compiled by mypyc, smsflow/native.py; the hot contracts' codecs
#: generated ahead of time, schemas/codegen.py) and as its source building every codec at run
#: time: both must match fastavro, so a pure-Python install behaves as the compiled one.
IMPLEMENTATIONS = {"installed": specialized, "source": source_module("schemas/specialized.py")}


def _values(schema: Any, names: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of an Avro schema, as our models dump them (datetimes for timestamp-millis)."""
    if isinstance(schema, str):
        if schema in names:
            return _values(names[schema], names)
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1),
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False),
            "bytes": st.binary(max_size=80),
            "string": st.text(max_size=80),
        }[schema]
    if isinstance(schema, list):
        return st.one_of(*(_values(branch, names) for branch in schema))
    kind = schema["type"]
    if kind == "record":
        names[schema["name"]] = names[f"{schema.get('namespace')}.{schema['name']}"] = schema
        return st.fixed_dictionaries(
            {field["name"]: _values(field["type"], names) for field in schema["fields"]}
        )
    if kind == "enum":
        names[schema["name"]] = names[f"{schema.get('namespace')}.{schema['name']}"] = schema
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(_values(schema["items"], names), max_size=4)
    if schema.get("logicalType") == "timestamp-millis":
        return st.datetimes(
            min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),  # noqa: DTZ001
            timezones=st.just(UTC),
        )
    return _values(kind, names)


def _records(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return _values(contracts()[name].schema_json, {})


def _fastavro_bytes(name: str, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, contracts()[name].parsed, record)
    return buffer.getvalue()


def _fastavro_read(name: str, body: bytes) -> tuple[Any, int] | str:
    buffer = io.BytesIO(body)
    try:
        return fastavro.schemaless_reader(buffer, contracts()[name].parsed, None), buffer.tell()
    except CORRUPT_BODY_ERRORS:
        return "refused"


def _generated_read(name: str, body: bytes, impl: str = "installed") -> tuple[Any, int] | str:
    read: specialized.Reader | None = IMPLEMENTATIONS[impl].reader(
        contracts()[name].schema_json, precompiled=impl == "installed"
    )
    assert read is not None
    try:
        return read(body, 0)
    except CORRUPT_BODY_ERRORS as exc:
        # fastavro reads a negative enum or union index as Python indexes (-1: the last
        # symbol or branch); the generated reader refuses it, as a corrupt body.
        negative = "enum index -" in str(exc) or "union branch -" in str(exc)
        return "refused: negative index" if negative else "refused"


@pytest.mark.parametrize("name", NAMES)
def test_every_contract_gets_a_generated_reader_and_writer(name: str) -> None:
    schema = contracts()[name].schema_json
    assert specialized.reader(schema) is not None
    assert specialized.writer(schema) is not None


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=100, deadline=None, derandomize=True)
@given(data=st.data())
def test_same_bytes_and_values_as_fastavro(name: str, impl: str, data: st.DataObject) -> None:
    record = data.draw(_records(name))
    expected = _fastavro_bytes(name, record)
    write = IMPLEMENTATIONS[impl].writer(
        contracts()[name].schema_json, precompiled=impl == "installed"
    )
    assert write is not None
    out = bytearray()
    write(out, record)
    assert bytes(out) == expected
    assert _generated_read(name, expected, impl) == _fastavro_read(name, expected)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=100, deadline=None, derandomize=True)
@given(data=st.data())
def test_corrupt_bodies_read_as_fastavro_reads_them(
    name: str, impl: str, data: st.DataObject
) -> None:
    body = bytearray(_fastavro_bytes(name, data.draw(_records(name))))
    cut = data.draw(st.integers(0, len(body)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                               max_size=3))
    for index, value in flips:
        if body:
            body[index % len(body)] = value
    corrupt = bytes(body[:cut]) + data.draw(st.binary(max_size=4))
    generated = _generated_read(name, corrupt, impl)
    reference = _fastavro_read(name, corrupt)
    if reference == "refused":
        # The inline one-byte string read may run past the end; the codec refuses that by the
        # end position (test_the_codec_refuses_a_body_cut_short_and_trailing_bytes).
        assert str(generated).startswith("refused") or (
            isinstance(generated, tuple) and generated[1] > len(corrupt)
        )
    elif generated != "refused: negative index":
        assert generated == reference


def test_a_naive_timestamp_is_local_time_as_in_fastavro() -> None:
    naive = datetime(2026, 12, 5, 21, 30, 15, 123_456)  # noqa: DTZ001 (the point)
    assert specialized.timestamp_millis(naive) == fastavro.write.LOGICAL_WRITERS[
        "long-timestamp-millis"](naive, {})


def test_a_timestamp_before_the_epoch_keeps_its_millisecond() -> None:
    instant = datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)
    assert specialized.timestamp_millis(instant) == -1
    out = bytearray()
    specialized.write_timestamp_millis(out, instant)
    assert specialized.read_timestamp_millis(bytes(out), 0) == (
        datetime(1970, 1, 1, tzinfo=UTC) - timedelta(milliseconds=1), len(out))


def test_the_codec_refuses_a_body_cut_short_and_trailing_bytes() -> None:
    outcome_codec = codec("RouteHealth")
    record = {
        "route_id": "uk-a", "state": "HEALTHY", "score": 1.0, "delivery_rate": None,
        "submit_latency_p95_ms": None, "error_rate": None, "window_s": 300,
        "updated_at": datetime(2026, 12, 5, tzinfo=UTC),
    }
    data = outcome_codec.encode(record)
    assert outcome_codec.decode(data) == record
    with pytest.raises(DecodeError, match="trailing") as trailing:
        outcome_codec.decode(data + b"\x00")
    assert trailing.value.reason_code == "UNDECODABLE"
    for cut in range(11, len(data)):
        with pytest.raises(DecodeError) as cut_short:
            outcome_codec.decode(data[:cut])
        assert cut_short.value.reason_code == "UNDECODABLE"


def test_a_record_that_does_not_fit_the_schema_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="RouteHealth"):
        codec("RouteHealth").encode({"route_id": "uk-a"})
