"""Confluent wire format, for when a schema registry is configured.

Wire form (Confluent "wire format", what every Confluent-compatible serializer writes):
``00`` magic byte, the 4-byte big-endian schema id the registry assigned to the writer schema,
then the Avro binary body. Any Confluent-compatible reader (Java ``KafkaAvroDeserializer``,
confluent-kafka-python's ``AvroDeserializer``, Apicurio's serdes …) decodes it without our code:
it fetches the schema by id from the registry.

* **Encoding** registers (or, with auto-registration off, looks up) the contract's standalone
  schema (:attr:`schemas.registry.AvroContract.schema_json`) under a subject named by
  TopicNameStrategy, ``<topic>-value``; with no topic at hand, RecordNameStrategy's full record
  name (``io.smsflow.SubmitRequest``). The id is cached per subject: one HTTP call per subject
  and process.
* **Decoding** accepts both framings, told apart by the first byte: ``C3 01`` is Avro
  single-object encoding (handed to :class:`schemas.codec.AvroCodec`), ``00`` is Confluent's.
  An id not seen before is fetched from the registry (``GET /schemas/ids/{id}``, cached) and the
  body is read with Avro schema resolution from that writer schema into our current reader
  schema, so records from older or newer compatible versions decode.

Failures raise :class:`schemas.codec.DecodeError` with a stable reason code:

* ``UNDECODABLE``: neither framing, truncated header or body, trailing bytes.
* ``SCHEMA_MISMATCH``: the registry does not know the id, or the writer schema it names cannot
  be resolved into this contract (another record, an incompatible change, not Avro).
* ``REGISTRY_UNAVAILABLE`` is not a ``DecodeError`` at all but :class:`RegistryUnavailableError`
  (a :class:`SchemaRegistryError`, transient): the registry could not be asked (down, timeout,
  5xx, refused credentials). The record may well be fine: callers retry or stop, never
  dead-letter or skip it, and an ``except DecodeError`` / ``except ValueError`` cannot catch it.

Encoding failures raise :class:`SchemaRegistryError` (``REGISTRY_UNAVAILABLE`` as its transient
subclass :class:`RegistryUnavailableError`; ``SCHEMA_REJECTED`` or ``SCHEMA_NOT_REGISTERED``): a
producer must not silently fall back to another framing.

The client is deliberately small (stdlib ``urllib``; no extra runtime dependency): it speaks the
Confluent REST API subset that every compatible registry serves: Confluent Schema Registry,
Apicurio's ``/apis/ccompat/v7``, Karapace, Redpanda.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

import fastavro
import fastavro.schema
from fastavro.read import SchemaResolutionError

from schemas.codec import CORRUPT_BODY_ERRORS, AvroCodec, DecodeError, codec
from schemas.codec import MARKER as SINGLE_OBJECT_MARKER
from schemas.registry import AvroContract, contracts
from smsflow.domain.errors import SmsflowError, TransientError

MAGIC: Final = b"\x00"
HEADER_LEN: Final = 5
"""Magic byte plus the 4-byte big-endian schema id."""
MAX_SCHEMA_ID: Final = 2**31 - 1
"""Schema ids are Java ``int``s in the registry's API."""

ENV_URL: Final = "SMSFLOW_SCHEMA_REGISTRY_URL"
ENV_AUTO_REGISTER: Final = "SMSFLOW_SCHEMA_REGISTRY_AUTO_REGISTER"

CONTENT_TYPE: Final = "application/vnd.schemaregistry.v1+json"
DEFAULT_TIMEOUT_S: Final = 5.0

# Reason codes.
UNDECODABLE: Final = "UNDECODABLE"
SCHEMA_MISMATCH: Final = "SCHEMA_MISMATCH"
REGISTRY_UNAVAILABLE: Final = "REGISTRY_UNAVAILABLE"
SCHEMA_NOT_FOUND: Final = "SCHEMA_NOT_FOUND"
SCHEMA_NOT_REGISTERED: Final = "SCHEMA_NOT_REGISTERED"
SCHEMA_REJECTED: Final = "SCHEMA_REJECTED"

# Confluent error codes (the ``error_code`` of an error body) that mean "no such thing".
_NOT_FOUND_CODES: Final = frozenset({40401, 40402, 40403})


class SchemaRegistryError(SmsflowError, RuntimeError):
    """The registry could not do what was asked; ``reason_code`` says why.

    ``REGISTRY_UNAVAILABLE`` (network error, timeout, 5xx, 401/403, an answer that is not the
    registry API), ``SCHEMA_NOT_FOUND`` (unknown id), ``SCHEMA_NOT_REGISTERED`` (lookup of a
    schema the subject does not have), ``SCHEMA_REJECTED`` (409 incompatible, 422 invalid).
    """

    def __init__(
        self,
        reason_code: str,
        message: str,
        *,
        status: int | None = None,
        error_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.status = status
        self.error_code = error_code


class RegistryUnavailableError(SchemaRegistryError, TransientError):
    """The registry could not be asked (down, timeout, 5xx, refused credentials): transient.

    Deliberately *not* a :class:`~schemas.codec.DecodeError` (nor a ``ValueError``): it says
    nothing about the record, so a caller that rejects or skips records on a decode error must
    not catch it by accident. Wait and retry (:mod:`schemas.retrying`), or stop.
    """

    def __init__(
        self, message: str, *, status: int | None = None, error_code: int | None = None
    ) -> None:
        super().__init__(REGISTRY_UNAVAILABLE, message, status=status, error_code=error_code)


class RegistryClient(Protocol):
    """What :class:`WireCodec` needs from a registry (the real client, or a test double)."""

    def register(self, subject: str, schema: str) -> int: ...

    def lookup(self, subject: str, schema: str) -> int: ...

    def get_schema(self, schema_id: int) -> str: ...


# --------------------------------------------------------------------------------------------
# Framing and naming (pure)
# --------------------------------------------------------------------------------------------


def frame(schema_id: int, body: bytes) -> bytes:
    """``00`` + big-endian id + body."""
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"schema id {schema_id} out of range")
    return MAGIC + struct.pack(">I", schema_id) + body


def unframe(data: bytes) -> tuple[int, bytes]:
    """Split a Confluent-framed value into (schema id, body); DecodeError if it is not one."""
    if len(data) < HEADER_LEN or data[:1] != MAGIC:
        raise DecodeError(UNDECODABLE, "not Confluent wire format (magic byte 00 + 4-byte id)")
    (schema_id,) = struct.unpack(">I", data[1:HEADER_LEN])
    if schema_id > MAX_SCHEMA_ID:
        # No registry can hold it (ids are Java ints), and asking would look like an outage
        # (the registry answers a bare 404): the record's fault, never a reason to wait.
        raise DecodeError(UNDECODABLE, f"schema id {schema_id} is out of range (max 2^31-1)")
    return schema_id, data[HEADER_LEN:]


def topic_subject(topic: str, *, is_key: bool = False) -> str:
    """TopicNameStrategy: ``<topic>-value`` (or ``<topic>-key``)."""
    if not topic:
        raise ValueError("a topic name is required for TopicNameStrategy")
    return f"{topic}-{'key' if is_key else 'value'}"


def record_subject(contract: AvroContract) -> str:
    """RecordNameStrategy: the record's full name, ``io.smsflow.SubmitRequest``."""
    return contract.full_name


def schema_text(contract: AvroContract) -> str:
    """The exact text registered for a contract: its standalone JSON, compact and stable.

    Not the parsing canonical form: that drops defaults and logical types, which readers need.
    Stable text matters because some registries (Apicurio by default) dedupe by raw content.
    """
    return json.dumps(contract.schema_json, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# The registry client
# --------------------------------------------------------------------------------------------


class SchemaRegistryClient:
    """A minimal, caching client of the Confluent Schema Registry REST API.

    ``url`` is the API root: ``http://host:8081`` for Confluent, Karapace or Redpanda,
    ``http://host:8080/apis/ccompat/v7`` for Apicurio. Credentials in the URL
    (``http://user:secret@host``) are sent as HTTP basic auth. Thread-safe.
    """

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"schema registry URL must be http(s)://host[:port][/path]: {url!r}")
        netloc = parsed.hostname if ":" not in parsed.hostname else f"[{parsed.hostname}]"
        if parsed.port is not None:
            netloc = f"{netloc}:{parsed.port}"
        self.url = urllib.parse.urlunsplit(
            (parsed.scheme, netloc, parsed.path.rstrip("/"), "", "")
        )
        self.timeout_s = timeout_s
        self._auth: str | None = None
        if parsed.username is not None:
            user = urllib.parse.unquote(parsed.username)
            secret = urllib.parse.unquote(parsed.password or "")
            token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
            self._auth = f"Basic {token}"
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"SchemaRegistryClient({self.url!r})"

    # -- API -----------------------------------------------------------------------------------

    def register(self, subject: str, schema: str) -> int:
        """``POST /subjects/{subject}/versions``: the id of ``schema`` (registered if new).

        Two processes registering a new subject at the same moment can get 409 from Apicurio
        ("artifact already exists") though the schema is the same; the registration then
        exists, so look it up instead of failing."""
        try:
            return self._subject_id("versions", subject, schema)
        except SchemaRegistryError as exc:
            if exc.status != 409:
                raise
            try:
                return self._subject_id("", subject, schema)
            except SchemaRegistryError:
                raise exc from None

    def lookup(self, subject: str, schema: str) -> int:
        """``POST /subjects/{subject}``: the id of ``schema`` if the subject has it; never
        registers (``SCHEMA_NOT_REGISTERED`` otherwise)."""
        return self._subject_id("", subject, schema)

    def get_schema(self, schema_id: int) -> str:
        """``GET /schemas/ids/{id}``: the schema text with that id (``SCHEMA_NOT_FOUND``)."""
        with self._lock:
            found = self._schemas.get(schema_id)
        if found is not None:
            return found
        answer = self._request("GET", f"/schemas/ids/{schema_id}")
        schema = answer.get("schema")
        if not isinstance(schema, str):
            raise RegistryUnavailableError(
                f"{self.url} answered without a schema for id {schema_id}"
            )
        kind = answer.get("schemaType", "AVRO")
        if kind != "AVRO":
            raise SchemaRegistryError(
                SCHEMA_NOT_FOUND, f"schema id {schema_id} is a {kind} schema, not Avro"
            )
        if answer.get("references"):
            raise SchemaRegistryError(
                SCHEMA_NOT_FOUND,
                f"schema id {schema_id} uses schema references, which are not supported",
            )
        with self._lock:
            self._schemas[schema_id] = schema
        return schema

    # -- internals -----------------------------------------------------------------------------

    def _subject_id(self, action: str, subject: str, schema: str) -> int:
        key = (subject, schema)
        with self._lock:
            cached = self._ids.get(key)
        if cached is not None:
            return cached
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}"
        if action:
            path += f"/{action}"
        try:
            answer = self._request("POST", path, {"schema": schema})
        except SchemaRegistryError as exc:
            if exc.reason_code == SCHEMA_NOT_FOUND and not action:
                raise SchemaRegistryError(
                    SCHEMA_NOT_REGISTERED,
                    f"subject {subject!r} has no such schema (auto-registration is off)",
                    status=exc.status,
                    error_code=exc.error_code,
                ) from exc
            raise
        schema_id = answer.get("id")
        if not isinstance(schema_id, int) or isinstance(schema_id, bool):
            raise RegistryUnavailableError(
                f"{self.url} answered without a schema id: {answer!r:.200}"
            )
        with self._lock:
            self._ids[key] = schema_id
            self._schemas.setdefault(schema_id, schema)
        return schema_id

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url + path, data=data, method=method
        )
        request.add_header("Accept", f"{CONTENT_TYPE}, application/json")
        if data is not None:
            request.add_header("Content-Type", CONTENT_TYPE)
        if self._auth:
            request.add_header("Authorization", self._auth)
        where = f"{method} {self.url}{path}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(where, exc) from None
        except (OSError, ValueError) as exc:  # URLError, refused, reset, timeout, bad status
            raise RegistryUnavailableError(
                f"schema registry unreachable ({where}): {exc}"
            ) from exc
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise RegistryUnavailableError(
                f"{where} did not answer with a JSON object: {raw[:200]!r}"
            )
        return answer


def _http_error(where: str, exc: urllib.error.HTTPError) -> SchemaRegistryError:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    error_code = body.get("error_code") if isinstance(body.get("error_code"), int) else None
    detail = str(body.get("message") or exc.reason)
    status = exc.code
    if status == 404 and error_code in _NOT_FOUND_CODES:
        # Only the registry's own "no such id/subject/version" (error_code 4040x): a bare 404 is
        # a wrong URL, and must not make good records look unknown.
        reason = SCHEMA_NOT_FOUND
        detail = f"not registered ({detail})"
    elif status in (409, 422):
        reason = SCHEMA_REJECTED
    else:  # 5xx, 401/403, 429, a 404 from something that is not the registry API …
        return RegistryUnavailableError(
            f"{where}: HTTP {status}: {detail}", status=status, error_code=error_code
        )
    return SchemaRegistryError(
        reason, f"{where}: HTTP {status}: {detail}", status=status, error_code=error_code
    )


# --------------------------------------------------------------------------------------------
# The codec
# --------------------------------------------------------------------------------------------


class WireCodec:
    """Encodes one contract in Confluent wire format; decodes both framings.

    ``fallback`` decodes single-object records (``C3 01``); by default the contract's
    :func:`schemas.codec.codec`, which also knows the released historical versions.
    """

    def __init__(
        self,
        contract: AvroContract,
        client: RegistryClient,
        *,
        fallback: AvroCodec | None = None,
        auto_register: bool = True,
    ) -> None:
        self.contract = contract
        self.client = client
        self.fallback = fallback or codec(contract.name)
        self.auto_register = auto_register
        self._schema = schema_text(contract)
        self._lock = threading.Lock()
        # schema id -> (writer schema, reader schema or None when the writer *is* the reader).
        self._writers: dict[int, tuple[Any, Any]] = {}
        # topic (None: no topic) -> the 5-byte header encode() writes (magic byte + schema id):
        # one registry call per topic and process, not one per record.
        self._headers: dict[str | None, bytes] = {}

    def __repr__(self) -> str:
        return f"WireCodec({self.contract.name!r}, {self.client!r})"

    # -- encode --------------------------------------------------------------------------------

    def subject(self, topic: str | None = None) -> str:
        """``<topic>-value``, or the record's full name when no topic is given."""
        return topic_subject(topic) if topic else record_subject(self.contract)

    def schema_id(self, topic: str | None = None) -> int:
        """The id of the current contract under :meth:`subject` (registering it if allowed);
        call it at start-up to fail fast and keep the first ``encode`` off the network."""
        subject = self.subject(topic)
        if self.auto_register:
            schema_id = self.client.register(subject, self._schema)
        else:
            schema_id = self.client.lookup(subject, self._schema)
        with self._lock:
            self._writers.setdefault(schema_id, (self.contract.parsed, None))
        return schema_id

    def encode(self, record: Mapping[str, Any], topic: str | None = None) -> bytes:
        """Confluent-framed Avro of ``record``; SchemaRegistryError if the id is not to be had."""
        header = self._headers.get(topic)
        if header is None:  # first record for this topic in this process
            header = self._headers[topic] = MAGIC + struct.pack(">I", self.schema_id(topic))
        return self.fallback.framed(header, record)

    # -- decode --------------------------------------------------------------------------------

    def decode(self, data: bytes | None) -> dict[str, Any]:
        """The record in either framing, resolved into the current contract."""
        if not data:
            raise DecodeError("EMPTY_RECORD", "record value is empty or null")
        if data[:2] == SINGLE_OBJECT_MARKER:
            return self.fallback.decode(data)
        if data[:1] != MAGIC:
            raise DecodeError(
                UNDECODABLE,
                f"neither Avro single-object (C3 01) nor Confluent wire format (00): "
                f"first byte {data[:1].hex()}",
            )
        schema_id, _ = unframe(data)
        writer, reader = self._writer(schema_id)
        if reader is None:  # written with the current contract: the generated reader
            return self.fallback.read_current(bytes(data), HEADER_LEN)
        body = io.BytesIO(data)
        body.seek(HEADER_LEN)
        name = self.contract.name
        try:
            record = fastavro.schemaless_reader(body, writer, reader)
        except SchemaResolutionError as exc:
            raise DecodeError(
                SCHEMA_MISMATCH,
                f"schema id {schema_id} ({_schema_name(writer)}) cannot be read as "
                f"{self.contract.full_name}: {str(exc)[:120]}",
            ) from exc
        except CORRUPT_BODY_ERRORS as exc:
            raise DecodeError(UNDECODABLE, f"corrupt {name} body: {exc}") from exc
        if body.tell() != len(data):
            raise DecodeError(UNDECODABLE, f"{name} body has trailing bytes")
        if not isinstance(record, dict):
            raise DecodeError(UNDECODABLE, f"{name} body is not a record")
        return record

    def _writer(self, schema_id: int) -> tuple[Any, Any]:
        with self._lock:
            found = self._writers.get(schema_id)
        if found is not None:
            return found
        try:
            text = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.reason_code == SCHEMA_NOT_FOUND:
                raise DecodeError(SCHEMA_MISMATCH, f"schema id {schema_id}: {exc}") from exc
            raise RegistryUnavailableError(
                f"cannot fetch writer schema id {schema_id}: {exc}",
                status=exc.status, error_code=exc.error_code,
            ) from exc
        try:
            writer = fastavro.parse_schema(json.loads(text), _force=True)
        except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
            raise DecodeError(
                SCHEMA_MISMATCH, f"schema id {schema_id} is not a valid Avro schema: {exc}"
            ) from exc
        same = _fingerprint(writer) == self.contract.fingerprint
        resolved = (writer, None if same else self.contract.parsed)
        with self._lock:
            self._writers[schema_id] = resolved
        return resolved


def _fingerprint(parsed: Any) -> bytes:
    canonical = fastavro.schema.to_parsing_canonical_form(parsed)
    return bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))


def _schema_name(parsed: Any) -> str:
    if isinstance(parsed, dict):
        return str(parsed.get("name", parsed.get("type", "?")))
    return str(parsed)[:40]


# --------------------------------------------------------------------------------------------
# Process-wide wiring from the environment
# --------------------------------------------------------------------------------------------


def registry_url() -> str | None:
    """``$SMSFLOW_SCHEMA_REGISTRY_URL``, or None: then single-object encoding is used."""
    value = os.environ.get(ENV_URL, "").strip()
    return value or None


def auto_register_enabled() -> bool:
    """``$SMSFLOW_SCHEMA_REGISTRY_AUTO_REGISTER`` (default true; ``false``/``0``/``no`` off)."""
    raw = os.environ.get(ENV_AUTO_REGISTER, "true").strip().lower()
    return raw not in ("0", "false", "no", "off")


# ($SMSFLOW_SCHEMA_REGISTRY_URL, auto-register) as first read: the environment does not change
# under a running process, and reading it cost the worker ~4 % of its CPU when done per record.
_ENVIRONMENT: list[tuple[str | None, bool]] = []
_CLIENTS: dict[str, SchemaRegistryClient] = {}
_WIRE_CODECS: dict[tuple[str, str, bool], WireCodec] = {}
_GLOBAL_LOCK = threading.Lock()


def client_for(url: str) -> SchemaRegistryClient:
    """One shared (caching) client per registry URL."""
    with _GLOBAL_LOCK:
        found = _CLIENTS.get(url)
        if found is None:
            found = _CLIENTS[url] = SchemaRegistryClient(url)
        return found


def wire_codec(name: str, url: str | None = None) -> WireCodec | None:
    """The Confluent codec of a contract for ``url`` (default: ``$SMSFLOW_SCHEMA_REGISTRY_URL``);
    None when no registry is configured. Built once per (contract, URL, auto-register); the
    environment is read once (:func:`reset_cache` reads it again)."""
    if not _ENVIRONMENT:
        _ENVIRONMENT.append((registry_url(), auto_register_enabled()))
    env_url, auto = _ENVIRONMENT[0]
    url = url or env_url
    if url is None:
        return None
    key = (name, url, auto)
    found = _WIRE_CODECS.get(key)  # a dict read is atomic: the lock is for building only
    if found is None:
        built = WireCodec(contracts()[name], client_for(url), auto_register=auto)
        with _GLOBAL_LOCK:
            found = _WIRE_CODECS.setdefault(key, built)
    return found


def prime(topics: Iterable[tuple[str, str]], url: str | None = None) -> dict[str, int]:
    """Register (or look up) each ``(topic, contract name)`` pair's subject now, so that a worker
    fails fast at start-up and its first ``encode`` stays off the network; returns subject -> id.
    Empty when no registry is configured."""
    ids: dict[str, int] = {}
    for topic, name in topics:
        found = wire_codec(name, url)
        if found is not None:
            ids[found.subject(topic)] = found.schema_id(topic)
    return ids


def reset_cache() -> None:
    """Forget the shared clients and codecs and the environment read (tests; after changing the
    environment)."""
    with _GLOBAL_LOCK:
        _ENVIRONMENT.clear()
        _CLIENTS.clear()
        _WIRE_CODECS.clear()
