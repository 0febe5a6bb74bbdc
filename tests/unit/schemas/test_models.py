"""The pydantic models and the Avro contracts must describe the same records, field by field."""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from schemas.models import ALL_MODELS, AvroModel, PartOutcome
from schemas.registry import contracts

_PRIMITIVE_TO_PY: dict[str, type] = {
    "string": str,
    "int": int,
    "long": int,
    "boolean": bool,
    "double": float,
    "float": float,
    "bytes": bytes,
}


def _assert_type_matches(avro_type: Any, py_type: Any, where: str, named: dict[str, Any]) -> None:
    if isinstance(avro_type, str) and avro_type in named:
        avro_type = named[avro_type]
    if isinstance(avro_type, list):
        assert avro_type[0] == "null", f"{where}: unions must be ['null', T]"
        assert len(avro_type) == 2, f"{where}: only nullable unions are used"
        args = typing.get_args(py_type)
        assert isinstance(py_type, types.UnionType) and type(None) in args, (
            f"{where}: Avro field is nullable, model field is not"
        )
        inner = next(a for a in args if a is not type(None))
        _assert_type_matches(avro_type[1], inner, where, named)
        return
    assert not isinstance(py_type, types.UnionType), f"{where}: model is nullable, Avro is not"
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if avro_type.get("logicalType") == "timestamp-millis":
            assert py_type is datetime, f"{where}: timestamp-millis must be datetime"
        elif kind == "enum":
            named[f"io.smsflow.{avro_type['name']}"] = avro_type
            assert isinstance(py_type, type) and issubclass(py_type, StrEnum), where
            assert [m.value for m in py_type] == avro_type["symbols"], f"{where}: enum symbols"
        elif kind == "record":
            named[f"io.smsflow.{avro_type['name']}"] = avro_type
            assert isinstance(py_type, type) and issubclass(py_type, AvroModel), where
            _assert_record_matches(avro_type, py_type, named)
        elif kind == "array":
            assert typing.get_origin(py_type) is list, f"{where}: array must be list"
            _assert_type_matches(avro_type["items"], typing.get_args(py_type)[0], where, named)
        else:
            _assert_type_matches(kind, py_type, where, named)
        return
    assert _PRIMITIVE_TO_PY[avro_type] is py_type, f"{where}: {avro_type} vs {py_type}"


def _assert_record_matches(
    record: dict[str, Any], model: type[AvroModel], named: dict[str, Any]
) -> None:
    avro_fields = record["fields"]
    model_fields: dict[str, FieldInfo] = model.model_fields
    assert [f["name"] for f in avro_fields] == list(model_fields), (
        f"{model.__name__}: field names or order differ"
    )
    hints = typing.get_type_hints(model)
    for field in avro_fields:
        name = field["name"]
        where = f"{model.__name__}.{name}"
        info = model_fields[name]
        _assert_type_matches(field["type"], hints[name], where, named)
        if "default" in field:
            assert not info.is_required(), f"{where}: Avro has a default, model requires it"
            assert info.default == field["default"], f"{where}: defaults differ"
        else:
            assert info.is_required(), f"{where}: model has a default, Avro does not"


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_model_matches_avro_contract(model: type[AvroModel]) -> None:
    contract = contracts()[model.__name__]
    _assert_record_matches(contract.schema_json, model, {})


def test_every_contract_has_a_model() -> None:
    assert sorted(m.__name__ for m in ALL_MODELS) == sorted(contracts())


def _sample_value(annotation: Any, *, optional_as_none: bool) -> Any:
    """A value of ``annotation``: every optional field None, or every one set."""
    args = typing.get_args(annotation)
    if type(None) in args:
        if optional_as_none:
            return None
        annotation = next(arg for arg in args if arg is not type(None))
    if typing.get_origin(annotation) is list:
        return [_sample_value(typing.get_args(annotation)[0], optional_as_none=optional_as_none)]
    if isinstance(annotation, type) and issubclass(annotation, AvroModel):
        return _sample(annotation, optional_as_none=optional_as_none)
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return list(annotation)[-1]
    if annotation is datetime:
        return datetime(2026, 12, 7, 6, 30, 15, 123000, tzinfo=UTC)
    return {str: "s", int: 7, float: 1.5, bool: True, bytes: b"b"}[annotation]


def _sample(model: type[AvroModel], *, optional_as_none: bool) -> AvroModel:
    return model(**{name: _sample_value(info.annotation, optional_as_none=optional_as_none)
                    for name, info in model.model_fields.items()})


@pytest.mark.parametrize("optional_as_none", [False, True], ids=["all-set", "optionals-none"])
@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_the_fields_encoded_are_model_dumps(model: type[AvroModel], optional_as_none: bool
                                           ) -> None:
    """``avro_fields`` (what ``to_avro`` encodes) is ``model_dump(mode="python")`` without its
    cost, nested contracts included, and the record decodes back to the same model."""
    record = _sample(model, optional_as_none=optional_as_none)
    assert record.avro_fields() == record.model_dump(mode="python")
    assert model.from_avro(record.to_avro()) == record


@pytest.mark.parametrize("optional_as_none", [False, True], ids=["all-set", "optionals-none"])
@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_a_decoded_record_builds_the_model_validation_would(
    model: type[AvroModel], optional_as_none: bool
) -> None:
    """``from_avro`` skips pydantic's validation of what the Avro reader returned; the model
    must be the one ``model_validate`` builds: equal, the same enum members and nested models,
    the same fields set, as frozen."""
    fields = model.codec().decode(_sample(model, optional_as_none=optional_as_none).to_avro())
    validated = model.model_validate(fields)
    built = model.from_avro_fields(dict(fields))
    assert built == validated
    assert repr(built) == repr(validated)
    assert built.model_fields_set == validated.model_fields_set
    for name in model.model_fields:
        assert type(getattr(built, name)) is type(getattr(validated, name)), name
    with pytest.raises(ValidationError, match="frozen"):
        built.__setattr__(next(iter(model.model_fields)), None)


@pytest.mark.parametrize(
    "change", ["missing", "extra", "missing-and-extra", "unknown-symbol", "not-a-record"]
)
def test_fields_no_avro_reader_returns_are_validated_as_before(change: str) -> None:
    """The short cut is only for the reader's output; anything else is refused as
    ``model_validate`` refuses it."""
    fields = PartOutcome.codec().decode(_sample(PartOutcome, optional_as_none=False).to_avro())
    if change == "missing":
        del fields["done_at"]
    elif change == "extra":
        fields["surprise"] = 1
    elif change == "missing-and-extra":  # as many keys as the contract has fields
        del fields["done_at"]
        fields["surprise"] = 1
    elif change == "unknown-symbol":
        fields["sent"]["outcome"] = "MAYBE"
    else:
        fields["sent"] = "a string"
    with pytest.raises(ValidationError):
        PartOutcome.from_avro_fields(fields)
