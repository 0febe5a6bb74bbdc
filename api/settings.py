"""Settings of the API process (prefix ``SMSFLOW_API_``), read once at start-up.

The key pepper is a secret: it comes from the environment or from a file the deployment mounts
(``SMSFLOW_API_KEY_PEPPER_FILE``), never from ``config/platform.yaml`` or the Kafka topics, so a
copy of the key table alone cannot be used to test guesses offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from smsflow.domain.errors import PermanentError

MIN_PEPPER_BYTES = 16


class PepperMissing(PermanentError, RuntimeError):
    """Neither ``SMSFLOW_API_KEY_PEPPER`` nor ``SMSFLOW_API_KEY_PEPPER_FILE`` gives a usable
    pepper."""


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMSFLOW_API_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080

    key_pepper: SecretStr | None = None
    """Server secret of the API key HMAC. Prefer ``key_pepper_file``."""

    key_pepper_file: Path | None = None
    """A file holding the pepper (e.g. a mounted Kubernetes secret); wins over ``key_pepper``."""

    instances: int = 1
    """API processes sharing the traffic (replicas x workers): each admits this share of a
    tenant's API rate, so the tenant's total stays at its configured rate."""

    max_body_bytes: int = 2_000_000
    """Request bodies above this are refused with 413 before they are read."""

    idempotency_ttl_s: float = 48 * 3_600.0
    """How long a stored answer replays an ``Idempotency-Key`` (at least 24 h, promised)."""

    role: Literal["all", "submit"] = "all"
    """``all`` serves every route and keeps the status and inbound stores. ``submit`` keeps no
    store (they fold all stage traffic, ~0.1 ms of CPU per accepted message in every process:
    docs/performance.md#http-api) and forwards the GET routes that need one to ``status_url``,
    a process of role ``all``; the POST routes are served locally either way."""

    status_url: str | None = None
    """Role ``submit``: the base URL of the process that answers GET /v1/messages/{id},
    /v1/usage and /v1/inbound (e.g. ``http://smsflow-api-status:8080``). Unset, those routes
    answer 503 on a submit process (route them to the status role at the ingress instead)."""

    status_enabled: bool = True
    """Keep message states and usage from the pipeline's topics (GET /v1/messages/{id},
    GET /v1/usage). Every process then reads all of five topics' traffic."""

    status_window_s: float = 86_400.0
    """A message's status is kept this long after its last change."""

    inbound_enabled: bool = True
    """Keep tenants' recent MO messages from ``sms.inbound`` (GET /v1/inbound)."""

    inbound_window_s: float = 7 * 86_400.0
    """How far back GET /v1/inbound reaches (sms.inbound itself keeps 30 days)."""

    inbound_max_per_tenant: int = 50_000
    """The newest this many MO messages of a tenant are kept (memory bound per tenant)."""

    produce_timeout_s: float = 10.0
    """A message Kafka has not stored by then fails the request (503), never a silent drop."""


def load_api_settings() -> ApiSettings:
    return ApiSettings()


def resolve_pepper(settings: ApiSettings) -> bytes:
    """The pepper bytes, from the file reference or the variable; raises :class:`PepperMissing`."""
    if settings.key_pepper_file is not None:
        try:
            raw = settings.key_pepper_file.read_bytes().strip()
        except OSError as exc:
            raise PepperMissing(f"cannot read SMSFLOW_API_KEY_PEPPER_FILE: {exc}") from exc
    elif settings.key_pepper is not None:
        raw = settings.key_pepper.get_secret_value().encode()
    else:
        raise PepperMissing(
            "set SMSFLOW_API_KEY_PEPPER_FILE (a file with at least 16 random bytes) or "
            "SMSFLOW_API_KEY_PEPPER"
        )
    if len(raw) < MIN_PEPPER_BYTES:
        raise PepperMissing(f"the API key pepper must be at least {MIN_PEPPER_BYTES} bytes")
    return raw
