"""Load the Avro contracts in ``schemas/avro/`` into parsed, self-contained schemas.

Each ``.avsc`` file holds one named record. A record may refer to a record of another file by
its full name (``io.smsflow.SubmitRequest``); here every such reference is inlined at its first
use so that each topic's schema is standalone. That standalone form is what gets fingerprinted
for single-object encoding, so any Avro reader holding the same ``.avsc`` text can decode our
records without our code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import fastavro
import fastavro.schema

NAMESPACE = "io.smsflow"
_PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)


@dataclass(frozen=True)
class AvroContract:
    """One topic-value contract: its full name, standalone JSON and parsed fastavro form."""

    full_name: str
    schema_json: dict[str, Any]
    parsed: Any
    fingerprint: bytes  # CRC-64-AVRO of the parsing canonical form, little-endian, 8 bytes

    @property
    def name(self) -> str:
        return self.full_name.rsplit(".", 1)[-1]


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name else f"{namespace}.{name}"


def _inline(node: Any, namespace: str, raw: dict[str, dict[str, Any]], seen: set[str]) -> Any:
    """Return ``node`` with references to other files' records replaced by their definition
    (first use only; later uses keep the name, as Avro requires)."""
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        full = _full_name(node, namespace)
        if full in seen:
            return full
        if full not in raw:
            raise KeyError(f"unknown Avro type {node!r}")
        return _inline(raw[full], namespace, raw, seen)
    if isinstance(node, list):
        return [_inline(branch, namespace, raw, seen) for branch in node]
    if isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "enum", "fixed"):
            full = _full_name(node["name"], node.get("namespace", namespace))
            seen.add(full)
            if kind == "record":
                inner_ns = full.rsplit(".", 1)[0]
                fields = [
                    {**field, "type": _inline(field["type"], inner_ns, raw, seen)}
                    for field in node["fields"]
                ]
                return {**node, "fields": fields}
            return node
        if kind == "array":
            return {**node, "items": _inline(node["items"], namespace, raw, seen)}
        if kind == "map":
            return {**node, "values": _inline(node["values"], namespace, raw, seen)}
        return {**node, "type": _inline(kind, namespace, raw, seen)}
    raise TypeError(f"not an Avro schema node: {node!r}")


def _collect_named(node: Any, namespace: str, into: dict[str, dict[str, Any]]) -> None:
    """Register every named type defined anywhere in ``node`` (records, enums, fixed)."""
    if isinstance(node, list):
        for branch in node:
            _collect_named(branch, namespace, into)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "enum", "fixed"):
            full = _full_name(node["name"], node.get("namespace", namespace))
            into.setdefault(full, node)
            for field in node.get("fields", ()):
                _collect_named(field["type"], full.rsplit(".", 1)[0], into)
        elif kind == "array":
            _collect_named(node["items"], namespace, into)
        elif kind == "map":
            _collect_named(node["values"], namespace, into)
        elif isinstance(kind, dict | list):
            _collect_named(kind, namespace, into)


def _read_raw_schemas() -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Return the full names of the top-level records (one per file) and every named type."""
    tops: list[str] = []
    named: dict[str, dict[str, Any]] = {}
    for entry in resources.files("schemas").joinpath("avro").iterdir():
        if entry.name.endswith(".avsc"):
            doc = json.loads(entry.read_text(encoding="utf-8"))
            tops.append(_full_name(doc["name"], doc.get("namespace", NAMESPACE)))
            _collect_named(doc, NAMESPACE, named)
    return sorted(tops), named


@cache
def contracts() -> dict[str, AvroContract]:
    """All contracts by short name (``SubmitRequest`` …), loaded once."""
    tops, raw = _read_raw_schemas()
    loaded: dict[str, AvroContract] = {}
    for full_name in tops:
        standalone = _inline(full_name, NAMESPACE, raw, set())
        parsed = fastavro.parse_schema(standalone, _force=True)
        contract = AvroContract(full_name, standalone, parsed, _fingerprint(parsed))
        loaded[contract.name] = contract
    return loaded


@dataclass(frozen=True)
class HistoricalSchema:
    """A released version of a contract, kept so old records stay readable."""

    name: str
    version: int
    parsed: Any
    fingerprint: bytes


def _fingerprint(parsed: Any) -> bytes:
    canonical = fastavro.schema.to_parsing_canonical_form(parsed)
    # fastavro's hex string is already the little-endian byte order single-object encoding
    # wants (checked against the spec's test vector in tests/unit/schemas/test_codec.py).
    return bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))


@cache
def history() -> tuple[HistoricalSchema, ...]:
    """Every released version in ``schemas/avro/history/<Name>.v<N>.json`` (standalone form)."""
    found: list[HistoricalSchema] = []
    for entry in resources.files("schemas").joinpath("avro", "history").iterdir():
        if entry.name.endswith(".json"):
            name, version = entry.name.removesuffix(".json").rsplit(".v", 1)
            parsed = fastavro.parse_schema(
                json.loads(entry.read_text(encoding="utf-8")), _force=True
            )
            found.append(HistoricalSchema(name, int(version), parsed, _fingerprint(parsed)))
    return tuple(sorted(found, key=lambda h: (h.name, h.version)))


def contract(name: str) -> AvroContract:
    try:
        return contracts()[name]
    except KeyError:
        raise KeyError(f"no Avro contract named {name!r}") from None
