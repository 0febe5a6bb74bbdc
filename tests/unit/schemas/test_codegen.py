"""The hot contracts' codecs generated ahead of time (schemas/codegen.py): current, compiled
with the other hot modules, and the ones the codecs use."""

from __future__ import annotations

import pytest

from schemas import codegen, specialized
from schemas.codec import codec
from schemas.registry import contracts
from smsflow.native import NATIVE_MODULES
from tests.paths import REPO_ROOT


def test_the_committed_modules_are_what_the_contracts_make() -> None:
    for path, text in codegen.expected_files().items():
        assert path.is_file(), f"missing {path.name}: python -m schemas.codegen --write"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is out of date: python -m schemas.codegen --write"
        )
    assert codegen.main(["--check"]) == 0


def test_nothing_else_lives_in_the_generated_package() -> None:
    expected = {path.name for path in codegen.expected_files()}
    assert {path.name for path in codegen.PACKAGE.glob("*.py")} == expected


@pytest.mark.parametrize("name", codegen.HOT_CONTRACTS)
def test_each_hot_contract_is_compiled_and_used(name: str) -> None:
    source = f"schemas/generated/{codegen.module_name(name)}.py"
    assert source in NATIVE_MODULES
    assert (REPO_ROOT / source).is_file()
    found = codec(name)
    module = f"schemas.generated.{codegen.module_name(name)}"
    assert (found._read.__module__, found._write.__module__) == (module, module)


def test_a_schema_generated_for_no_module_is_built_at_run_time() -> None:
    schema = dict(contracts()["SubmitRequest"].schema_json, name="NotGenerated")
    read = specialized.reader(schema)
    assert read is not None and read.__module__ != "schemas.generated.submit_request"


def test_module_names() -> None:
    assert codegen.module_name("SubmitOutcome") == "submit_outcome"
    assert codegen.module_name("ReceiptEvent") == "receipt_event"
