"""Configuration of the SMSC simulator (pydantic v2 models, loaded from YAML).

See ``docs/smsc-simulator.md`` for the reference and ``config/smsc-sim.yaml`` for a sample.
These models are only used at start-up and by the runtime knobs; the server converts them into
plain runtime objects so no validation runs on the per-PDU path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BindType = Literal["transmitter", "receiver", "transceiver"]
ReceiptStat = Literal["UNDELIV", "EXPIRED", "REJECTD"]

__all__ = [
    "AccountConfig",
    "BindType",
    "FailureStatus",
    "ProfileConfig",
    "ReceiptStat",
    "SimulatorConfig",
    "load_config",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountConfig(_Model):
    """An ESME account allowed to bind."""

    system_id: str = Field(min_length=1, max_length=15)
    password: str = Field(default="", max_length=8)
    #: Bind types this account may use; ``None`` allows all three.
    bind_types: tuple[BindType, ...] | None = None
    #: Concurrent binds this account may hold (a real SMSC's per-account limit); one more is
    #: refused with ESME_RBINDFAIL. ``None``: no limit.
    max_binds: int | None = Field(default=None, ge=1)


class FailureStatus(_Model):
    """One weighted outcome for receipts of messages that are *not* delivered."""

    stat: ReceiptStat = "UNDELIV"
    #: Value of ``err:`` in the text receipt and of the network_error_code TLV's code.
    err: int = Field(default=1, ge=0, le=999)
    weight: float = Field(default=1.0, gt=0)
    #: network_error_code TLV "network type" octet (1 ANSI-136, 2 IS-95, 3 GSM).
    network_type: int = Field(default=3, ge=0, le=255)


class ProfileConfig(_Model):
    """Behaviour for destinations matching one of ``prefixes`` (longest prefix wins)."""

    #: Destination prefixes (digits; a leading ``+`` on the destination is ignored).
    prefixes: tuple[str, ...] = ()
    #: Delay before submit_sm_resp is sent (scheduled; other PDUs are not held back).
    submit_latency_ms: float = Field(default=0.0, ge=0)
    #: Fraction of messages whose receipt says DELIVRD; the rest get a ``failure_status``.
    delivery_ratio: float = Field(default=1.0, ge=0, le=1)
    #: Mean delay between submit_sm_resp and the delivery receipt.
    receipt_delay_ms: float = Field(default=100.0, ge=0)
    #: Uniform jitter around the mean, as a fraction of it (0.1 = +/-10 %).
    receipt_jitter: float = Field(default=0.1, ge=0, le=1)
    #: Weighted outcomes for non-delivered messages.
    failure_status: tuple[FailureStatus, ...] = (FailureStatus(),)
    #: submit_sm per second accepted for this profile (token bucket shared by all binds);
    #: ``None`` or 0 disables throttling. Over the limit: submit_sm_resp ESME_RTHROTTLED (0x58).
    throttle_tps: float | None = Field(default=None, ge=0)
    #: Token bucket size (burst); defaults to ``throttle_tps`` (one second's worth, at least 1).
    throttle_burst: float | None = Field(default=None, gt=0)
    #: Fraction of submit_sm answered ESME_RTHROTTLED regardless of rate (an SMSC that sheds
    #: load): deterministic, every submit adds the fraction to a counter and one is refused
    #: each time it passes 1 (0.3 refuses the 4th, 7th, 10th, ...). 0 disables it.
    throttle_ratio: float = Field(default=0.0, ge=0, lt=1)

    @field_validator("prefixes")
    @classmethod
    def _strip_plus(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(p.lstrip("+") for p in v)
        if any(not p for p in out):
            raise ValueError("empty prefix (the default profile matches everything else)")
        return out

    @field_validator("failure_status")
    @classmethod
    def _non_empty(cls, v: tuple[FailureStatus, ...]) -> tuple[FailureStatus, ...]:
        if not v:
            raise ValueError("failure_status needs at least one entry")
        return v


class SimulatorConfig(_Model):
    """Top-level simulator configuration."""

    #: system_id the SMSC reports in bind_resp.
    system_id: str = Field(default="SMSCSIM", max_length=15)
    accounts: tuple[AccountConfig, ...] = ()
    profiles: dict[str, ProfileConfig] = Field(default_factory=dict)
    #: Profile used when no prefix matches; created with defaults if absent from ``profiles``.
    default_profile: str = "default"
    message_id_format: Literal["hex", "dec"] = "hex"
    #: Format of the ids in receipts; ``same`` = ``message_id_format``. Real SMSCs often answer
    #: submit_sm in hex and write receipts in decimal (Kannel's ``msg-id-type``).
    receipt_id_format: Literal["same", "hex", "dec"] = "same"
    #: First message id; ``None`` picks one from the clock so ids stay unique across restarts.
    message_id_start: int | None = Field(default=None, ge=0)
    receipt_format: Literal["text", "tlv", "both"] = "both"
    #: Seed for the simulator's RNG (delivery outcome, failure choice, jitter); ``None`` = random.
    seed: int | None = None
    #: Unacknowledged deliver_sm per session; further receipts wait in the account queue.
    receipt_window: int = Field(default=256, ge=1)
    #: Delay before re-sending a receipt whose deliver_sm_resp carried an error status.
    receipt_retry_ms: float = Field(default=1000.0, ge=0)
    #: Count accepted submit_sm that repeat an earlier one (same destination and short_message,
    #: UDH included) in ``stats.duplicate_submits``: what the subscriber would get twice. For
    #: drills (bench/chaos.py) with one message per destination; it keeps a set of every part.
    count_duplicate_submits: bool = False
    #: Share of receipts sent twice (the copy ``duplicate_receipt_delay_ms`` after the first,
    #: same message id and text): an SMSC that repeats receipts. Deterministic (``Share``).
    duplicate_receipt_ratio: float = Field(default=0.0, ge=0, le=1)
    duplicate_receipt_delay_ms: float = Field(default=50.0, ge=0)
    #: Start in outage (same as calling ``set_outage(True)`` right after start).
    outage: bool = False
    #: Seconds between stats log lines of ``smsflow smsc-sim`` (0 disables them).
    stats_interval_s: float = Field(default=5.0, ge=0)

    @field_validator("accounts")
    @classmethod
    def _unique_accounts(cls, v: tuple[AccountConfig, ...]) -> tuple[AccountConfig, ...]:
        ids = [a.system_id for a in v]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate account system_id: {', '.join(dupes)}")
        return v

    @model_validator(mode="after")
    def _add_default_profile(self) -> SimulatorConfig:
        if self.default_profile not in self.profiles:
            profiles = dict(self.profiles)
            profiles[self.default_profile] = ProfileConfig()
            object.__setattr__(self, "profiles", profiles)
        seen: dict[str, str] = {}
        for name, profile in self.profiles.items():
            for prefix in profile.prefixes:
                if prefix in seen:
                    raise ValueError(
                        f"prefix {prefix!r} is in both profile {seen[prefix]!r} and {name!r}"
                    )
                seen[prefix] = name
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> SimulatorConfig:
        return load_config(path)


def load_config(source: SimulatorConfig | Mapping[str, Any] | str | Path | None) -> SimulatorConfig:
    """Build a config from a model, a mapping, a YAML file path, or ``None``.

    ``None`` gives a convenient default: one account ``smsflow``/``smsflow`` and a default
    profile (no latency, everything delivered after ~100 ms, no throttling).
    """
    if source is None:
        default_account = AccountConfig(system_id="smsflow", password="smsflow")  # noqa: S106
        return SimulatorConfig(accounts=(default_account,))
    if isinstance(source, SimulatorConfig):
        return source
    if isinstance(source, Mapping):
        return SimulatorConfig.model_validate(dict(source))
    text = Path(source).read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{source}: top level must be a mapping")
    return SimulatorConfig.model_validate(data)
