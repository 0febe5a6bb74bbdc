"""The pydantic models and the Avro contracts must describe the same records, field by field."""

from __future__ import annotations

import types
import typing
from datetime import datetime
from enum import StrEnum
from typing import Any

import pytest
from pydantic.fields import FieldInfo

from schemas.models import ALL_MODELS, AvroModel
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
