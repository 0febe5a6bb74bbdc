"""One exception root (smsflow/domain/errors.py): every exception class the production packages
define derives from ``SmsflowError``, and the registry outage stays transient while decode
errors stay permanent (a caller that skips a record on a permanent error must never catch the
outage by accident)."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator

import pytest

from schemas.codec import DecodeError
from schemas.wire import RegistryUnavailableError
from smsflow.domain.errors import PermanentError, SmsflowError, TransientError
from tests.paths import REPO_ROOT

PACKAGES = ("smsflow", "pipeline", "connectors", "api", "schemas")


def _defined_classes() -> Iterator[tuple[str, str]]:
    """``(module, class name)`` of every top-level class with a base, from the sources."""
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and node.bases:
                    yield module.removesuffix(".__init__"), node.name


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for module, name in _defined_classes():
        if not any(word in name for word in ("Error", "Exception", "Timeout", "Missing",
                                             "Unknown", "Failed", "Closed", "Unavailable")):
            continue  # importing every module would build the faust app; names tell enough
        cls = getattr(importlib.import_module(module), name)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return found


def test_the_scan_finds_the_known_exceptions() -> None:
    names = {cls.__name__ for cls in _exception_classes()}
    assert {"DecodeError", "RegistryUnavailableError", "ReceiptError", "ApiError",
            "UnknownTenant", "SubmitTimeout"} <= names


@pytest.mark.parametrize("cls", _exception_classes(), ids=lambda cls: cls.__qualname__)
def test_every_exception_of_ours_has_the_project_root(cls: type[BaseException]) -> None:
    assert issubclass(cls, SmsflowError), (
        f"{cls.__module__}.{cls.__qualname__} must derive from smsflow.domain.errors."
        "PermanentError or TransientError (or SmsflowError when neither fits)")


def test_the_registry_outage_is_transient_and_never_a_decode_error() -> None:
    assert issubclass(RegistryUnavailableError, TransientError)
    assert not issubclass(RegistryUnavailableError, (PermanentError, DecodeError, ValueError))
    assert issubclass(DecodeError, PermanentError) and issubclass(DecodeError, ValueError)
    assert not issubclass(DecodeError, TransientError)
