"""Avro binary readers and writers generated for one schema, for the hot path.

fastavro's schemaless reader and writer walk the parsed schema for every record: a dispatch per
field, plus its logical-type conversions. For our small records that walk is most of the cost
(a ``SubmitOutcome`` of 21 fields read in ~11 µs, ~17 µs with its three timestamps). Here each
contract's schema is turned once into Python source with one straight line per field, compiled,
and reused: the same bytes, the same values, about 3x cheaper (``bench/codec.py``).

Only what our contracts use is supported: records, ``null``/``boolean``/``int``/``long``/
``float``/``double``/``bytes``/``string``, enums, arrays, two-branch unions with ``null``, and
``timestamp-millis``. :func:`reader` and :func:`writer` return ``None`` for any other schema and
the caller keeps fastavro. ``tests/unit/schemas/test_specialized.py`` checks byte-for-byte and
value-for-value equality with fastavro on generated records, and the same errors on corrupt
bodies.

Reading is as strict as fastavro, and stricter in one way: a truncated body or a bad union or
enum index raises ``IndexError``/``EOFError``, invalid UTF-8 raises ``UnicodeDecodeError``, and
a *negative* union or enum index is refused too (fastavro indexes with it as Python does: -1
reads as the last branch or symbol of a corrupt record). The caller
(:class:`schemas.codec.AvroCodec`) turns those and trailing bytes into ``DecodeError``.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]
Writer = Callable[[bytearray, Mapping[str, Any]], None]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


class Unsupported(Exception):
    """The schema uses a construct this generator does not handle (fastavro keeps it)."""


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint at ``pos``: (value, next position)."""
    b = buf[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = read_long(buf, pos)
    if size < 0:
        raise EOFError(f"negative length {size}")
    end = pos + size
    if end > len(buf):
        raise EOFError("body ends inside a bytes or string value")
    return buf[pos:end], end


def read_string(buf: bytes, pos: int) -> tuple[str, int]:
    # Fast path: a length under 64 is one byte (zig-zag doubles it).
    b = buf[pos]
    if b < 0x80 and not b & 1:
        end = pos + 1 + (b >> 1)
        if end > len(buf):
            raise EOFError("body ends inside a string value")
        return buf[pos + 1:end].decode(), end
    raw, pos = read_bytes(buf, pos)
    return raw.decode(), pos


def read_timestamp_millis(buf: bytes, pos: int) -> tuple[datetime, int]:
    ms, pos = read_long(buf, pos)
    return EPOCH + timedelta(milliseconds=ms), pos


def read_double(buf: bytes, pos: int) -> tuple[float, int]:
    end = pos + 8
    if end > len(buf):
        raise EOFError("body ends inside a double")
    return _DOUBLE.unpack_from(buf, pos)[0], end


def read_float(buf: bytes, pos: int) -> tuple[float, int]:
    end = pos + 4
    if end > len(buf):
        raise EOFError("body ends inside a float")
    return _FLOAT.unpack_from(buf, pos)[0], end


def read_boolean(buf: bytes, pos: int) -> tuple[bool, int]:
    # As fastavro: 0 is false, any other byte true.
    return buf[pos] != 0, pos + 1


def write_long(out: bytearray, value: int) -> None:
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"{value} does not fit an Avro long")
    n = (value << 1) ^ (value >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def write_int(out: bytearray, value: int) -> None:
    if not -(1 << 31) <= value < (1 << 31):
        raise ValueError(f"{value} does not fit an Avro int")
    write_long(out, value)


def write_string(out: bytearray, value: str) -> None:
    raw = value.encode()
    size = len(raw)
    if size < 64:
        out.append(size << 1)
    else:
        write_long(out, size)
    out += raw


def write_bytes(out: bytearray, value: bytes) -> None:
    write_long(out, len(value))
    out += value


def write_boolean(out: bytearray, value: bool) -> None:
    out.append(1 if value else 0)


def write_double(out: bytearray, value: float) -> None:
    out += _DOUBLE.pack(value)


def write_float(out: bytearray, value: float) -> None:
    out += _FLOAT.pack(value)


def timestamp_millis(value: datetime | int) -> int:
    """fastavro's conversion, exactly: whole milliseconds since the epoch; a naive datetime is
    taken as local time (``time.mktime``), as fastavro does."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not None:
        delta = value - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000
    return int(time.mktime(value.timetuple())) * 1_000 + value.microsecond // 1_000


def write_timestamp_millis(out: bytearray, value: datetime | int) -> None:
    write_long(out, timestamp_millis(value))


_PRIMITIVE_READERS = {
    "string": "read_string", "bytes": "read_bytes", "long": "read_long", "int": "read_long",
    "double": "read_double", "float": "read_float", "boolean": "read_boolean",
}
_PRIMITIVE_WRITERS = {
    "string": "write_string", "bytes": "write_bytes", "long": "write_long", "int": "write_int",
    "double": "write_double", "float": "write_float", "boolean": "write_boolean",
}


#: Stems of the generated locals that always hold an int (a byte, an end, a branch, an index,
#: a count); the others hold any value. The generated module declares them so (mypy, mypyc).
_INT_STEMS = frozenset({"c", "e", "b", "i", "n"})


class Source:
    """Lines of generated Python with indentation and fresh local names."""

    def __init__(self, constant_prefix: str = "K") -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self.local_types: dict[str, str] = {}
        self._count = 0
        self._constant_prefix = constant_prefix

    def fresh(self, stem: str) -> str:
        self._count += 1
        name = f"{stem}{self._count}"
        self.local_types[name] = "int" if stem in _INT_STEMS else "Any"
        return name

    def constant(self, value: Any) -> str:
        self._count += 1
        name = f"{self._constant_prefix}{self._count}"
        self.constants[name] = value
        return name

    def declarations(self, indent: int) -> list[str]:
        """``name: type`` for every local, to put first in the function's body."""
        return [f"{'    ' * indent}{name}: {kind}" for name, kind in self.local_types.items()]

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


def _named(schema: Any, names: dict[str, Any]) -> Any:
    """Resolve a reference to a named type defined earlier in the same schema."""
    if isinstance(schema, str) and schema in names:
        return names[schema]
    return schema


def _register(schema: Any, names: dict[str, Any]) -> None:
    if isinstance(schema, dict) and schema.get("type") in ("record", "enum") and "name" in schema:
        name = schema["name"]
        namespace = schema.get("namespace")
        names[name] = schema
        if namespace and "." not in name:
            names[f"{namespace}.{name}"] = schema


def _emit_inline_varint(src: Source, kind: str, target: str, indent: int) -> None:
    """A string, int or long read with the one-byte case inline (no call): lengths under 64
    and values in -64..63, which is most of ours."""
    first = src.fresh("c")
    src.add(indent, f"{first} = buf[pos]")
    if kind == "string":
        end = src.fresh("e")
        src.add(indent, f"if {first} < 0x80 and not {first} & 1:")
        src.add(indent + 1, f"{end} = pos + 1 + ({first} >> 1)")
        src.add(indent + 1, f"{target} = buf[pos + 1:{end}].decode()")
        src.add(indent + 1, f"pos = {end}")
        src.add(indent, "else:")
        src.add(indent + 1, f"{target}, pos = read_string(buf, pos)")
        return
    src.add(indent, f"if {first} < 0x80:")
    src.add(indent + 1, f"{target} = ({first} >> 1) ^ -({first} & 1)")
    src.add(indent + 1, "pos += 1")
    src.add(indent, "else:")
    src.add(indent + 1, f"{target}, pos = read_long(buf, pos)")


def _emit_read(src: Source, schema: Any, target: str, indent: int,
               names: dict[str, Any]) -> None:
    """Lines that read one value of ``schema`` at ``pos`` into local ``target``."""
    schema = _named(schema, names)
    if isinstance(schema, str):
        if schema == "null":
            src.add(indent, f"{target} = None")
            return
        if schema not in _PRIMITIVE_READERS:
            raise Unsupported(schema)
        if schema in ("string", "long", "int"):
            _emit_inline_varint(src, schema, target, indent)
            return
        src.add(indent, f"{target}, pos = {_PRIMITIVE_READERS[schema]}(buf, pos)")
        return
    if isinstance(schema, list):
        if len(schema) != 2 or "null" not in schema:
            raise Unsupported(f"union {schema}")
        null_index = schema.index("null")
        other = schema[1 - null_index]
        branch = src.fresh("b")
        src.add(indent, f"{branch}, pos = read_long(buf, pos)")
        src.add(indent, f"if {branch} == {null_index}:")
        src.add(indent + 1, f"{target} = None")
        src.add(indent, f"elif {branch} == {1 - null_index}:")
        _emit_read(src, other, target, indent + 1, names)
        src.add(indent, "else:")
        src.add(indent + 1, f"raise IndexError(f'union branch {{{branch}}} out of range')")
        return
    kind = schema["type"]
    if kind == "record":
        _register(schema, names)
        fields = []
        for field in schema["fields"]:
            local = src.fresh("v")
            _emit_read(src, field["type"], local, indent, names)
            fields.append(f"{field['name']!r}: {local}")
        src.add(indent, f"{target} = {{{', '.join(fields)}}}")
        return
    if kind == "enum":
        _register(schema, names)
        symbols = src.constant(tuple(schema["symbols"]))
        index = src.fresh("i")
        src.add(indent, f"{index}, pos = read_long(buf, pos)")
        src.add(indent, f"if {index} < 0:")
        src.add(indent + 1, f"raise IndexError(f'enum index {{{index}}} out of range')")
        src.add(indent, f"{target} = {symbols}[{index}]")
        return
    if kind == "array":
        item = src.fresh("item")
        count = src.fresh("n")
        src.add(indent, f"{target} = []")
        src.add(indent, "while True:")
        src.add(indent + 1, f"{count}, pos = read_long(buf, pos)")
        src.add(indent + 1, f"if {count} == 0:")
        src.add(indent + 2, "break")
        src.add(indent + 1, f"if {count} < 0:")
        src.add(indent + 2, f"{count} = -{count}")
        src.add(indent + 2, "_, pos = read_long(buf, pos)  # block size in bytes")
        src.add(indent + 1, f"for _ in range({count}):")
        _emit_read(src, schema["items"], item, indent + 2, names)
        src.add(indent + 2, f"{target}.append({item})")
        return
    if kind == "long" and schema.get("logicalType") == "timestamp-millis":
        src.add(indent, f"{target}, pos = read_timestamp_millis(buf, pos)")
        return
    if kind in _PRIMITIVE_READERS and "logicalType" not in schema:
        _emit_read(src, kind, target, indent, names)
        return
    raise Unsupported(f"{kind} {schema.get('logicalType')}")


def _emit_write(src: Source, schema: Any, value: str, indent: int,
                names: dict[str, Any]) -> None:
    """Lines that append ``value`` (a local expression) as ``schema`` to ``out``."""
    schema = _named(schema, names)
    if isinstance(schema, str):
        if schema == "null":
            src.add(indent, f"if {value} is not None:")
            src.add(indent + 1, f"raise ValueError('null expected, got {{{value}!r}}')")
            return
        if schema not in _PRIMITIVE_WRITERS:
            raise Unsupported(schema)
        src.add(indent, f"{_PRIMITIVE_WRITERS[schema]}(out, {value})")
        return
    if isinstance(schema, list):
        if len(schema) != 2 or "null" not in schema:
            raise Unsupported(f"union {schema}")
        null_index = schema.index("null")
        src.add(indent, f"if {value} is None:")
        src.add(indent + 1, f"out.append({null_index << 1})")
        src.add(indent, "else:")
        src.add(indent + 1, f"out.append({(1 - null_index) << 1})")
        _emit_write(src, schema[1 - null_index], value, indent + 1, names)
        return
    kind = schema["type"]
    if kind == "record":
        _register(schema, names)
        record = src.fresh("r")
        src.add(indent, f"{record} = {value}")
        for field in schema["fields"]:
            local = src.fresh("f")
            name = field["name"]
            if "default" in field:
                default = src.constant(field["default"])
                src.add(indent, f"{local} = {record}.get({name!r}, {default})")
            else:
                src.add(indent, f"{local} = {record}[{name!r}]")
            _emit_write(src, field["type"], local, indent, names)
        return
    if kind == "enum":
        _register(schema, names)
        indexes = src.constant({symbol: i for i, symbol in enumerate(schema["symbols"])})
        src.add(indent, f"write_long(out, {indexes}[{value}])")
        return
    if kind == "array":
        item = src.fresh("item")
        src.add(indent, f"if {value}:")
        src.add(indent + 1, f"write_long(out, len({value}))")
        src.add(indent + 1, f"for {item} in {value}:")
        _emit_write(src, schema["items"], item, indent + 2, names)
        src.add(indent, "out.append(0)")
        return
    if kind == "long" and schema.get("logicalType") == "timestamp-millis":
        src.add(indent, f"write_timestamp_millis(out, {value})")
        return
    if kind in _PRIMITIVE_WRITERS and "logicalType" not in schema:
        _emit_write(src, kind, value, indent, names)
        return
    raise Unsupported(f"{kind} {schema.get('logicalType')}")


def _compile(src: Source, name: str) -> Any:
    namespace: dict[str, Any] = dict(globals())
    namespace.update(src.constants)
    exec(compile("\n".join(src.lines), f"<avro {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def reader_source(schema: Mapping[str, Any], src: Source) -> bool:
    """Fill ``src`` with the body of a reader of ``schema`` (locals ``buf``, ``pos``); False
    if the schema uses what is not supported."""
    try:
        _emit_read(src, dict(schema), "record", 1, {})
    except Unsupported:
        return False
    src.add(1, "return record, pos")
    return True


def writer_source(schema: Mapping[str, Any], src: Source) -> bool:
    """Fill ``src`` with the body of a writer of ``schema`` (locals ``out``, ``record``)."""
    try:
        _emit_write(src, dict(schema), "record", 1, {})
    except Unsupported:
        return False
    return True


def schema_key(schema: Mapping[str, Any]) -> str:
    """What identifies a schema among the precompiled codecs (schemas/generated/)."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _build(kind: str, schema: Mapping[str, Any], precompiled: bool) -> Any:
    """The ``read`` or ``write`` function of ``schema``: generated ahead of time
    (schemas/generated/) when there is one and ``precompiled``, else built here; ``None`` if
    the schema uses what is not supported."""
    if precompiled:
        # Imported here: the generated modules import this one's primitives.
        from schemas import generated

        table = generated.READERS if kind == "read" else generated.WRITERS
        found = table.get(schema_key(schema))
        if found is not None:
            return found
    signature, body = _BUILDERS[kind]
    src = Source()
    src.add(0, signature)
    return _compile(src, kind) if body(schema, src) else None


_BUILDERS: dict[str, tuple[str, Callable[[Mapping[str, Any], Source], bool]]] = {
    "read": ("def read(buf, pos=0):", reader_source),
    "write": ("def write(out, record):", writer_source),
}


def reader(schema: Mapping[str, Any], *, precompiled: bool = True) -> Reader | None:
    """A function ``(data, start) -> (record, end position)`` for records of ``schema`` (the
    writer's schema, read as written), or ``None`` if the schema uses what is not supported.
    The hot contracts' readers are generated ahead of time into ``schemas/generated/`` (so
    that mypyc compiles them, smsflow/native.py); ``precompiled=False`` builds one here."""
    return _build("read", schema, precompiled)  # type: ignore[no-any-return]


def writer(schema: Mapping[str, Any], *, precompiled: bool = True) -> Writer | None:
    """A function ``(out, record)`` that appends ``record``'s Avro body to ``out``, or ``None``
    if the schema uses what is not supported (ahead of time for the hot contracts, as
    :func:`reader`)."""
    return _build("write", schema, precompiled)  # type: ignore[no-any-return]
