"""The platform configuration: tenants, operators, SMSC connections and routes.

Written by people in YAML (``config/platform.yaml``), loaded into the compacted topic
``sms.config`` by ``smsflow config apply``, read back by every worker into an immutable
:class:`PlatformConfig` snapshot. Validation happens here, before anything reaches Kafka, so a
typo is an error at ``apply`` time with the offending path, never a surprise in a worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from smsflow.config.secrets import SecretRef, is_reference
from smsflow.domain.inbound import KeywordLists, build_number_index

# The enums are the domain's; re-exported here because configuration code names them with the
# models that use them.
from smsflow.domain.traffic import BindClass, MessageType, Tier

__all__ = [
    "AdaptiveRate", "BindClass", "IdFormatName", "Inbound", "MessageType", "OffPeakWindow",
    "Operator", "PlatformConfig", "RateLimits", "Route", "Smsc", "Tenant", "Tier", "Webhook",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_ID = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")

WEBHOOK_SECRET_MIN = 16
SMPP_PASSWORD_MAX = 8
"""SMPP 3.4 C-Octet String limit (9 with the NUL): checked on the resolved value."""


class Webhook(_Frozen):
    """Where ``smsflow webhooks`` POSTs the tenant's delivery reports and, unless ``mo`` is
    false, its inbound (MO) messages (to ``mo_url`` if set) (docs/webhooks.md).

    ``secret`` is a reference (``env:NAME`` or ``file:/path``, smsflow.config.secrets) that
    only the webhooks connector resolves; a literal is accepted with a warning.
    """

    url: str = Field(description="http(s) URL the reports are POSTed to.")
    secret: SecretRef = Field(
        description="HMAC-SHA256 signing key (at least 16 characters): env:NAME or file:/path."
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="Per attempt, whole request.")
    max_retry_s: float = Field(
        default=86_400.0, ge=0, le=7 * 86_400,
        description="Retry budget per report or MO message, from when it was written to "
        "sms.dlr or sms.inbound.",
    )
    max_in_flight: int = Field(
        default=4, ge=1, le=64,
        description="Concurrent POSTs (reports and MO messages each have this many).",
    )
    mo: bool = Field(
        default=True,
        description="Also POST the tenant's inbound (MO) messages from sms.inbound; false: "
        "delivery reports only.",
    )
    mo_url: str | None = Field(
        default=None, description="Where MO messages are POSTed, if not to url."
    )

    @field_validator("url", "mo_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook url {url!r} must be http:// or https:// with a host")
        if parts.fragment:
            raise ValueError(f"webhook url {url!r} must not have a #fragment")
        return url

    @field_validator("secret")
    @classmethod
    def _literal_long_enough(cls, secret: SecretRef) -> SecretRef:
        text = secret.get_secret_value()
        if not is_reference(text) and len(text) < WEBHOOK_SECRET_MIN:
            raise ValueError(f"a webhook secret needs at least {WEBHOOK_SECRET_MIN} characters")
        return secret

    @model_validator(mode="after")
    def _mo_url_needs_mo(self) -> Webhook:
        if self.mo_url is not None and not self.mo:
            raise ValueError("mo_url is set but mo is false: drop one of them")
        return self

    @model_serializer(mode="wrap")
    def _omit_default_mo(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Leave ``mo``/``mo_url`` out while they have their defaults, so a tenant that does
        not use them is stored on ``sms.config`` exactly as before they existed, and processes
        of the previous version (extra fields forbidden) keep reading it during a rollout."""
        data = handler(self)
        if isinstance(data, dict):
            if self.mo:
                data.pop("mo", None)
            if self.mo_url is None:
                data.pop("mo_url", None)
        return data

    def mo_target(self) -> str | None:
        """Where the tenant's MO messages go, or None when it takes none."""
        if not self.mo:
            return None
        return self.mo_url if self.mo_url is not None else self.url


class Inbound(_Frozen):
    """A tenant's inbound (MO) numbers and opt-out keywords (docs/configuration.md#inbound).

    Keyword lists replace the defaults of ``smsflow/domain/inbound.py`` when given; matching is
    on the whole message, case- and whitespace-insensitive."""

    numbers: tuple[str, ...] = Field(
        default=(), description="Short codes, long numbers and sender ids subscribers reply to."
    )
    opt_out_keywords: tuple[str, ...] | None = Field(
        default=None, description="Default STOP, UNSUBSCRIBE, STOPALL, CANCEL, END, QUIT, OPTOUT."
    )
    opt_in_keywords: tuple[str, ...] | None = Field(
        default=None, description="Default START, UNSTOP, SUBSCRIBE, OPTIN."
    )

    @model_validator(mode="after")
    def _keywords_valid(self) -> Inbound:
        KeywordLists.of(self.opt_out_keywords, self.opt_in_keywords)  # raises on overlap/blank
        return self


class Tenant(_Frozen):
    id: str = _ID
    name: str
    tier: Tier = Tier.STANDARD
    rate_limit_pps: float = Field(gt=0, description="Message parts per second the tenant may send.")
    daily_quota: int | None = Field(default=None, gt=0, description="Parts per UTC day.")
    burst: float | None = Field(
        default=None, gt=0,
        description="Parts the tenant may send at once above its rate; default one second's worth.",
    )
    api_rate_per_s: float | None = Field(
        default=None, gt=0,
        description="Messages per second the HTTP API accepts from the tenant (over it: 429); "
        "default 10 x rate_limit_pps (docs/api.md#limits).",
    )
    api_burst: float | None = Field(
        default=None, gt=0,
        description="Messages the API accepts at once above its rate; default "
        "max(api rate, 1000) so a full batch always fits.",
    )
    quarantined: bool = False
    reject_held_before: datetime | None = Field(
        default=None,
        description="Set by `smsflow tenants release --reject-held`: messages held during the "
        "quarantine and parked before this instant are rejected (TENANT_QUARANTINED) instead "
        "of sent on.",
    )
    routes: tuple[str, ...] = Field(
        default=(), description="If set, only these routes may carry the tenant's traffic."
    )
    webhook: Webhook | None = Field(
        default=None,
        description="If set, delivery reports and MO messages are POSTed there (webhooks).",
    )
    inbound: Inbound = Field(
        default_factory=Inbound, description="MO numbers and opt-out keywords."
    )


class Operator(_Frozen):
    id: str = _ID
    name: str
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")
    mcc_mnc: str = Field(pattern=r"^\d{5,6}$")
    prefixes: tuple[str, ...] = Field(min_length=1, description="E.164 prefixes, with '+'.")
    carrier_names: tuple[str, ...] = Field(
        default=(),
        description="Names phonenumbers' carrier data uses for this operator (e.g. 'T-Mobile').",
    )
    ported_in: tuple[str, ...] = Field(
        default=(), description="E.164 numbers ported into this operator (override its prefixes)."
    )
    test_prefixes: tuple[str, ...] = Field(
        default=(),
        description="Fictional/test ranges (e.g. '+447700900') accepted without numbering-plan "
        "validation as this operator's mobile numbers.",
    )

    @field_validator("prefixes")
    @classmethod
    def _e164_prefixes(cls, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in prefixes:
            if not (prefix.startswith("+") and prefix[1:].isdigit()):
                raise ValueError(f"prefix {prefix!r} must be '+' followed by digits")
        return prefixes

    @field_validator("ported_in", "test_prefixes")
    @classmethod
    def _e164_numbers(cls, numbers: tuple[str, ...]) -> tuple[str, ...]:
        for number in numbers:
            if not (number.startswith("+") and number[1:].isdigit() and len(number) <= 16):
                raise ValueError(f"{number!r} must be '+' followed by at most 15 digits")
        return numbers


IdFormatName = Literal["hex", "dec", "str"]


class Smsc(_Frozen):
    id: str = _ID
    host: str
    port: int = Field(gt=0, lt=65536)
    # SMPP 3.4 C-Octet String limits, checked here so `config check` catches them, not the
    # sender at bind time.
    system_id: str = Field(min_length=1, max_length=15)
    password: SecretRef = Field(
        description="The bind password (at most 8 characters): env:NAME or file:/path."
    )
    system_type: str = Field(default="", max_length=12)
    region: str
    binds: int = Field(default=1, ge=1, le=32)
    window: int = Field(default=32, ge=1, le=512)
    submit_id_format: IdFormatName = "hex"
    """How the SMSC writes message ids in submit_sm_resp."""
    receipt_id_format: IdFormatName = "hex"
    """How it writes them in receipts (Kannel's msg-id-type)."""

    @field_validator("password")
    @classmethod
    def _literal_fits_smpp(cls, password: SecretRef) -> SecretRef:
        text = password.get_secret_value()
        if not is_reference(text) and len(text) > SMPP_PASSWORD_MAX:
            raise ValueError(f"an SMPP password has at most {SMPP_PASSWORD_MAX} characters")
        return password


class Route(_Frozen):
    id: str = _ID
    smsc: str
    operators: tuple[str, ...] = Field(min_length=1)
    tps: float = Field(gt=0, description="Parts per second the route may carry.")
    cost: float = Field(ge=0, description="Cost per message part.")
    tiers: tuple[Tier, ...] = (Tier.PREMIUM, Tier.STANDARD, Tier.ECONOMY)
    countries: tuple[str, ...] = Field(
        default=(),
        description="ISO countries covered in full: any operator there, resolved or not.",
    )
    message_types: tuple[MessageType, ...] = (
        MessageType.OTP, MessageType.TRANSACTIONAL, MessageType.MARKETING,
    )
    bind_class: BindClass = BindClass.SHARED
    cost_overrides: dict[str, float] = Field(
        default_factory=dict,
        description="Cost per part by destination operator id or ISO country (operator wins).",
    )
    baseline_score: float = Field(
        default=0.95, ge=0, le=1, description="Quality score (0..1) until health reports arrive."
    )
    baseline_latency_ms: float = Field(
        default=1000, gt=0, description="Expected latency until health reports arrive."
    )
    enabled: bool = True
    headroom: float = Field(
        default=0.2, ge=0, le=0.5,
        description="Fraction of tps only Premium may use: Standard/Economy get (1 - headroom).",
    )
    target_latency_ms: float = Field(
        default=500, gt=0, description="submit_sm_resp latency above which the rate is lowered."
    )

    @field_validator("countries")
    @classmethod
    def _iso_countries(cls, countries: tuple[str, ...]) -> tuple[str, ...]:
        for country in countries:
            if not (len(country) == 2 and country.isascii() and country.isupper()):
                raise ValueError(f"country {country!r} must be ISO 3166-1 alpha-2 (e.g. GB)")
        return countries

    @field_validator("cost_overrides")
    @classmethod
    def _override_costs(cls, overrides: dict[str, float]) -> dict[str, float]:
        for key, cost in overrides.items():
            if cost < 0:
                raise ValueError(f"cost override {key}: {cost} must be >= 0")
        return overrides


_HHMM = Field(
    pattern=r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$",
    description="Local time of day, HH:MM (or HH:MM:SS).",
)


class OffPeakWindow(_Frozen):
    """A daily window (local time; may wrap midnight) in which held Economy traffic may flow."""

    start: str = _HHMM
    end: str = _HHMM

    @model_validator(mode="after")
    def _not_empty(self) -> OffPeakWindow:
        if self.start == self.end:
            raise ValueError("an off-peak window needs start != end")
        return self


class AdaptiveRate(_Frozen):
    """AIMD parameters applied to every route (targets are per route: ``target_latency_ms``)."""

    enabled: bool = True
    ewma_alpha: float = Field(default=0.2, gt=0, le=1)
    min_decrease_factor: float = Field(default=0.5, gt=0, lt=1)
    backpressure_factor: float = Field(default=0.7, gt=0, lt=1)
    floor_fraction: float = Field(default=0.05, gt=0, le=1)
    increase_fraction_per_s: float = Field(default=0.05, gt=0)
    min_decrease_interval_s: float = Field(default=1.0, ge=0)


class RateLimits(_Frozen):
    """Platform-wide rate-limit settings (docs/rate-limits.md)."""

    global_pps: float | None = Field(
        default=None, gt=0, description="Platform cap in parts/s, shared by the throttles."
    )
    per_destination_per_minute: int | None = Field(
        default=None, gt=0, description="Anti-burst: parts per destination number per minute."
    )
    standard_min_share: float = Field(
        default=0.10, ge=0, le=0.4, description="Rate share Standard keeps on a saturated route."
    )
    economy_min_share: float = Field(
        default=0.05, ge=0, le=0.4, description="Rate share Economy keeps on a saturated route."
    )
    economy_off_peak: tuple[OffPeakWindow, ...] = Field(
        default=(), description="If set, Economy traffic waits for one of these windows."
    )
    off_peak_utc_offset_minutes: int = Field(default=0, ge=-14 * 60, le=14 * 60)
    adaptive: AdaptiveRate = AdaptiveRate()


class PlatformConfig(_Frozen):
    tenants: tuple[Tenant, ...] = ()
    operators: tuple[Operator, ...] = ()
    smscs: tuple[Smsc, ...] = ()
    routes: tuple[Route, ...] = ()
    limits: RateLimits = RateLimits()

    @model_validator(mode="after")
    def _references_resolve(self) -> PlatformConfig:
        for kind, items in (
            ("tenant", self.tenants),
            ("operator", self.operators),
            ("smsc", self.smscs),
            ("route", self.routes),
        ):
            ids = [item.id for item in items]
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"duplicate {kind} ids: {', '.join(duplicates)}")
        owners: dict[str, str] = {}
        for operator in self.operators:
            for prefix in operator.prefixes:
                other = owners.setdefault(prefix, operator.id)
                if other != operator.id:
                    raise ValueError(
                        f"prefix {prefix} is claimed by operators {other!r} and {operator.id!r}"
                    )
        # An MO to an address two tenants list could not be attributed (domain/inbound.py).
        build_number_index({t.id: t.inbound.numbers for t in self.tenants})
        smsc_ids = {s.id for s in self.smscs}
        operator_ids = {o.id for o in self.operators}
        for route in self.routes:
            if route.smsc not in smsc_ids:
                raise ValueError(f"route {route.id!r} names unknown smsc {route.smsc!r}")
            unknown = sorted(set(route.operators) - operator_ids)
            if unknown:
                raise ValueError(f"route {route.id!r} names unknown operators {unknown}")
        return self

    @model_validator(mode="after")
    def _routing_references(self) -> PlatformConfig:
        route_ids = {r.id for r in self.routes}
        for tenant in self.tenants:
            unknown = sorted(set(tenant.routes) - route_ids)
            if unknown:
                raise ValueError(f"tenant {tenant.id!r} names unknown routes {unknown}")
        for route in self.routes:
            for key in route.cost_overrides:
                is_country = len(key) == 2 and key.isupper()
                if not is_country and key not in route.operators:
                    raise ValueError(
                        f"route {route.id!r}: cost override {key!r} is neither an ISO country "
                        "nor one of the route's operators"
                    )
        owners: dict[str, str] = {}
        for operator in self.operators:
            for number in (*operator.ported_in, *operator.test_prefixes):
                other = owners.setdefault(number, operator.id)
                if other != operator.id:
                    raise ValueError(
                        f"{number} is claimed by operators {other!r} and {operator.id!r}"
                    )
        return self

    def literal_secrets(self) -> list[str]:
        """Where a secret is configured as a literal value rather than a reference."""
        found = [f"smscs[{s.id}].password" for s in self.smscs
                 if not is_reference(s.password.get_secret_value())]
        found += [f"tenants[{t.id}].webhook.secret" for t in self.tenants
                  if t.webhook is not None
                  and not is_reference(t.webhook.secret.get_secret_value())]
        return found

    def tenant(self, tenant_id: str) -> Tenant | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)

    def smsc(self, smsc_id: str) -> Smsc | None:
        return next((s for s in self.smscs if s.id == smsc_id), None)

    def route(self, route_id: str) -> Route | None:
        return next((r for r in self.routes if r.id == route_id), None)
