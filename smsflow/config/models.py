"""The platform configuration: tenants, operators, SMSC connections and routes.

Written by people in YAML (``config/platform.yaml``), loaded into the compacted topic
``sms.config`` by ``smsflow config apply``, read back by every worker into an immutable
:class:`PlatformConfig` snapshot. Validation happens here, before anything reaches Kafka, so a
typo is an error at ``apply`` time with the offending path, never a surprise in a worker.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Tier(StrEnum):
    PREMIUM = "premium"
    STANDARD = "standard"
    ECONOMY = "economy"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_ID = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")


class Tenant(_Frozen):
    id: str = _ID
    name: str
    tier: Tier = Tier.STANDARD
    rate_limit_pps: float = Field(gt=0, description="Message parts per second the tenant may send.")
    daily_quota: int | None = Field(default=None, gt=0, description="Parts per UTC day.")
    quarantined: bool = False


class Operator(_Frozen):
    id: str = _ID
    name: str
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")
    mcc_mnc: str = Field(pattern=r"^\d{5,6}$")
    prefixes: tuple[str, ...] = Field(min_length=1, description="E.164 prefixes, with '+'.")

    @field_validator("prefixes")
    @classmethod
    def _e164_prefixes(cls, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in prefixes:
            if not (prefix.startswith("+") and prefix[1:].isdigit()):
                raise ValueError(f"prefix {prefix!r} must be '+' followed by digits")
        return prefixes


IdFormatName = Literal["hex", "dec", "str"]


class Smsc(_Frozen):
    id: str = _ID
    host: str
    port: int = Field(gt=0, lt=65536)
    # SMPP 3.4 C-Octet String limits, checked here so `config check` catches them, not the
    # sender at bind time.
    system_id: str = Field(min_length=1, max_length=15)
    password: str = Field(max_length=8)
    system_type: str = Field(default="", max_length=12)
    region: str
    binds: int = Field(default=1, ge=1, le=32)
    window: int = Field(default=32, ge=1, le=512)
    submit_id_format: IdFormatName = "hex"
    """How the SMSC writes message ids in submit_sm_resp."""
    receipt_id_format: IdFormatName = "hex"
    """How it writes them in receipts (Kannel's msg-id-type)."""


class Route(_Frozen):
    id: str = _ID
    smsc: str
    operators: tuple[str, ...] = Field(min_length=1)
    tps: float = Field(gt=0, description="Parts per second the route may carry.")
    cost: float = Field(ge=0, description="Cost per message part.")
    tiers: tuple[Tier, ...] = (Tier.PREMIUM, Tier.STANDARD, Tier.ECONOMY)
    enabled: bool = True


class PlatformConfig(_Frozen):
    tenants: tuple[Tenant, ...] = ()
    operators: tuple[Operator, ...] = ()
    smscs: tuple[Smsc, ...] = ()
    routes: tuple[Route, ...] = ()

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
        smsc_ids = {s.id for s in self.smscs}
        operator_ids = {o.id for o in self.operators}
        for route in self.routes:
            if route.smsc not in smsc_ids:
                raise ValueError(f"route {route.id!r} names unknown smsc {route.smsc!r}")
            unknown = sorted(set(route.operators) - operator_ids)
            if unknown:
                raise ValueError(f"route {route.id!r} names unknown operators {unknown}")
        return self

    def tenant(self, tenant_id: str) -> Tenant | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)

    def smsc(self, smsc_id: str) -> Smsc | None:
        return next((s for s in self.smscs if s.id == smsc_id), None)

    def route(self, route_id: str) -> Route | None:
        return next((r for r in self.routes if r.id == route_id), None)
