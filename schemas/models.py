"""Pydantic v2 models, one per Avro contract in ``schemas/avro``.

Field names, order, optionality and defaults mirror the ``.avsc`` files exactly;
``tests/unit/schemas/test_models.py`` fails if they drift apart. Timestamps are timezone-aware
UTC datetimes (Avro ``timestamp-millis``). Models are frozen: a stage builds a new value instead
of mutating the one it received.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Self, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.codec import AvroCodec, codec
from schemas.wire import WireCodec, wire_codec

# The domain owns these enums; the contracts use them as they are (their values are the Avro
# symbols), so no layer converts one copy into another with ``.value``.
from smsflow.domain.encoding import TextEncoding
from smsflow.domain.inbound import InboundKeyword
from smsflow.domain.receipts import DeliveryStatus, ReceiptState
from smsflow.domain.route_policy import HealthReport
from smsflow.domain.route_state import RouteState
from smsflow.domain.traffic import MessageType

__all__ = [
    "ALL_MODELS", "AuditEvent", "AvroModel", "ConfigKind", "ConfigRecord", "DeliveryReport",
    "DeliveryStatus",
    "InboundKeyword", "InboundMessage", "MessageType", "PartOutcome", "ReceiptEvent",
    "ReceiptState", "Rejection", "RouteHealth", "RouteState", "RoutedMessage", "SubmitOutcome",
    "SubmitRequest", "SubmitStatus", "TextEncoding",
]


# A frozen model refuses ``setattr``; its slots are filled as pydantic's own constructor does.
_new_object = object.__new__
_set_attribute = object.__setattr__


class SubmitStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    FAILED = "FAILED"


class ConfigKind(StrEnum):
    TENANT = "TENANT"
    OPERATOR = "OPERATOR"
    SMSC = "SMSC"
    ROUTE = "ROUTE"
    LIMITS = "LIMITS"


class AvroModel(BaseModel):
    """Base of every contract model: knows its Avro codec by the class name."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    avro_name: ClassVar[str]

    #: Fields holding a contract of their own (``RoutedMessage.request``, ``PartOutcome.sent``),
    #: with its model.
    _nested_models: ClassVar[tuple[tuple[str, type[AvroModel]], ...]] = ()
    #: Each enum field with its members by Avro symbol.
    _enum_fields: ClassVar[tuple[tuple[str, Mapping[str, Enum]], ...]] = ()
    #: The field names (``cls.model_fields`` is a slow descriptor in pydantic 2.13).
    _field_names: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.avro_name = cls.__name__

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        nested, enums = [], []
        for name, info in cls.model_fields.items():
            for kind in (info.annotation, *get_args(info.annotation)):
                if isinstance(kind, type) and issubclass(kind, AvroModel):
                    nested.append((name, kind))
                elif isinstance(kind, type) and issubclass(kind, Enum):
                    enums.append((name, MappingProxyType(dict(kind._value2member_map_))))
        cls._nested_models = tuple(nested)
        cls._enum_fields = tuple(enums)
        cls._field_names = frozenset(cls.model_fields)

    @classmethod
    def codec(cls) -> AvroCodec | WireCodec:
        """Confluent wire format when ``SMSFLOW_SCHEMA_REGISTRY_URL`` is set, else single-object
        encoding. Decoding accepts both framings either way."""
        return wire_codec(cls.avro_name) or codec(cls.avro_name)

    def to_avro(self, topic: str | None = None) -> bytes:
        """Encode; ``topic`` names the registry subject (``<topic>-value``) when a registry is
        used, else the subject is the record's full name."""
        return self.encode_with(self.codec(), topic)

    def encode_with(self, found: AvroCodec | WireCodec, topic: str | None = None) -> bytes:
        """:meth:`to_avro` with a codec looked up in advance (:meth:`codec` reads the registry
        setting from the environment every time): for hot paths."""
        return self.encode_fields_with(found, self.avro_fields(), topic)

    @staticmethod
    def encode_fields_with(found: AvroCodec | WireCodec, fields: dict[str, Any],
                           topic: str | None = None) -> bytes:
        """Encode a record given as its fields with a codec looked up in advance: for hot paths
        that build a record of their own from values already typed (no model built, no
        pydantic validation; the codec's writer still refuses a value of the wrong type)."""
        return found.encode(fields, topic) if isinstance(found, WireCodec) else found.encode(fields)

    @classmethod
    def encode_fields(cls, fields: dict[str, Any], topic: str | None = None) -> bytes:
        """Encode a record given as :meth:`avro_fields`, e.g. one field replaced: a stage that
        re-sends a record it holds with a new timestamp skips a ``model_copy``."""
        return cls.encode_fields_with(cls.codec(), fields, topic)

    def avro_fields(self) -> dict[str, Any]:
        """The fields as the codecs take them: what ``model_dump(mode="python")`` gives for a
        contract (nested contracts as dicts; enums, datetimes and lists as they are) at a third
        of its cost, since a frozen model's ``__dict__`` already holds exactly its fields
        (tests/unit/schemas/test_models.py compares the two for every contract)."""
        fields = dict(self.__dict__)
        for name, _model in self._nested_models:
            nested = fields[name]
            if nested is not None:
                fields[name] = nested.avro_fields()
        return fields

    @classmethod
    def from_avro(cls, data: bytes | None) -> Self:
        return cls.from_avro_fields(cls.codec().decode(data))

    @classmethod
    def from_avro_fields(cls, fields: dict[str, Any]) -> Self:
        """The model of a record as the Avro reader returned it (takes ``fields`` over), built
        without pydantic's validation: the reader has already checked every value against the
        contract, which the model mirrors field by field (tests/unit/schemas/test_models.py), so
        validating again would only turn enum symbols into members and nested records into
        models. Done here, that is a third of ``model_validate``'s cost on every record every
        stage reads. Fields the reader cannot have produced (a key missing or extra, a symbol
        that is no member) go through ``model_validate``, which raises as it always did."""
        try:
            for name, members in cls._enum_fields:
                symbol = fields[name]
                if symbol is not None:
                    fields[name] = members[symbol]
            for name, model in cls._nested_models:
                record = fields[name]
                if type(record) is dict:
                    fields[name] = model.from_avro_fields(record)
                elif record is not None and not isinstance(record, model):
                    return cls.model_validate(fields)
        except (KeyError, TypeError, ValidationError):
            return cls.model_validate(fields)
        if fields.keys() != cls._field_names:
            return cls.model_validate(fields)
        built = _new_object(cls)
        _set_attribute(built, "__dict__", fields)
        _set_attribute(built, "__pydantic_fields_set__", set(fields))
        _set_attribute(built, "__pydantic_extra__", None)
        _set_attribute(built, "__pydantic_private__", None)
        return built


class SubmitRequest(AvroModel):
    message_id: str
    tenant_id: str
    source: str
    destination: str
    body: str
    message_type: MessageType = MessageType.TRANSACTIONAL
    submitted_at: datetime
    validity_s: int | None = None
    registered_delivery: bool = True
    client_ref: str | None = None


class RoutedMessage(AvroModel):
    request: SubmitRequest
    destination: str
    route_id: str
    smsc_id: str
    operator_id: str
    country: str
    encoding: TextEncoding
    parts: int
    routed_at: datetime
    failed_routes: list[str] = []
    throttled_at: datetime | None = None


class SubmitOutcome(AvroModel):
    message_id: str
    tenant_id: str
    client_ref: str | None = None
    route_id: str
    smsc_id: str
    operator_id: str
    country: str
    destination: str
    part_index: int
    part_count: int
    outcome: SubmitStatus
    smsc_message_id: str | None = None
    command_status: int
    status_name: str
    attempts: int
    latency_ms: float
    reason: str | None = None
    submitted_at: datetime
    sent_at: datetime
    expires_at: datetime
    receipt_requested: bool = True


class ReceiptEvent(AvroModel):
    smsc_id: str
    smsc_message_id: str
    raw_message_id: str
    state: ReceiptState
    error_code: int | None = None
    done_at: datetime | None = None
    received_at: datetime
    bind: str


class InboundMessage(AvroModel):
    inbound_id: str
    tenant_id: str | None = None
    source: str
    destination: str
    text: str
    data_coding: int
    keyword: InboundKeyword
    reason: str | None = None
    smsc_id: str
    bind: str
    received_at: datetime


class PartOutcome(AvroModel):
    sent: SubmitOutcome
    status: DeliveryStatus
    error_code: int | None = None
    reason: str | None = None
    done_at: datetime


class DeliveryReport(AvroModel):
    message_id: str
    tenant_id: str
    client_ref: str | None = None
    route_id: str
    smsc_id: str
    operator_id: str
    country: str
    destination: str
    parts: int
    status: DeliveryStatus
    error_code: int | None = None
    reason: str | None = None
    smsc_message_ids: list[str]
    submitted_at: datetime
    sent_at: datetime
    done_at: datetime


class Rejection(AvroModel):
    reason_code: str
    reason: str
    stage: str
    message_id: str | None = None
    tenant_id: str | None = None
    source_topic: str
    source_partition: int
    source_offset: int
    original: bytes | None = None
    rejected_at: datetime


class ConfigRecord(AvroModel):
    kind: ConfigKind
    id: str
    document: str
    updated_at: datetime


class RouteHealth(AvroModel):
    route_id: str
    state: RouteState
    score: float
    delivery_rate: float | None = None
    submit_latency_p95_ms: float | None = None
    error_rate: float | None = None
    window_s: int
    updated_at: datetime

    def engine_report(self) -> HealthReport:
        """What the routing engine ranks this route by (worker and sender alike)."""
        return HealthReport(self.state, self.score, self.submit_latency_p95_ms,
                            self.updated_at.timestamp())


class SmscBindStatus(AvroModel):
    smsc_id: str
    instance: str
    bound: int
    configured: int
    heartbeat_s: int
    updated_at: datetime
    throttled_partitions: list[int] = []


class AuditEvent(AvroModel):
    audit_id: str
    action: str
    tenant_id: str
    actor: str
    reason: str
    detail: str = ""
    at: datetime


ALL_MODELS: tuple[type[AvroModel], ...] = (
    SubmitRequest,
    RoutedMessage,
    SubmitOutcome,
    ReceiptEvent,
    InboundMessage,
    PartOutcome,
    DeliveryReport,
    Rejection,
    ConfigRecord,
    RouteHealth,
    SmscBindStatus,
    AuditEvent,
)
