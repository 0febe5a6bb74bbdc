"""The pure-Python source of a mypyc-compiled module (smsflow/native.py), for tests that
check the compiled and the source versions behave the same."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from smsflow import native
from tests.paths import REPO_ROOT


def source_module(source: str) -> ModuleType:
    """The pure-Python module of a native module's source, under a private name (the compiled
    one stays what the rest of the process imports)."""
    name = "_source_of_" + native.module_name(source).replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
