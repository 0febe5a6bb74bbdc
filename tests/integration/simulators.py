"""The SMSC simulator as most integration tests want it: one account per SMSC of a platform
configuration (config/platform.yaml by default), and that configuration pointed at it."""

from __future__ import annotations

from typing import Any

from connectors.smsc_sim import SimulatorThread
from smsflow.config.models import PlatformConfig
from smsflow.config.store import load_yaml
from tests.paths import PLATFORM_CONFIG


def platform_accounts(config: PlatformConfig, *, limit_binds: bool = False
                      ) -> list[dict[str, Any]]:
    """An account per SMSC (its system id and literal password); with ``limit_binds`` the
    simulator refuses a bind over the SMSC's ``binds``, as a real account limit does."""
    return [
        {"system_id": smsc.system_id, "password": smsc.password.get_secret_value(),
         **({"max_binds": smsc.binds} if limit_binds else {})}
        for smsc in config.smscs
    ]


def platform_simulator(config: PlatformConfig | None = None, *, limit_binds: bool = False,
                       **options: Any) -> SimulatorThread:
    """A started simulator serving every SMSC of ``config``; ``options`` are the rest of its
    configuration (seed, profiles, receipt_retry_ms, ...)."""
    accounts = platform_accounts(config or load_yaml(PLATFORM_CONFIG), limit_binds=limit_binds)
    return SimulatorThread({"accounts": accounts, **options}).start()


def pointed_at(config: PlatformConfig, port: int, **smsc_changes: Any) -> PlatformConfig:
    """``config`` with every SMSC on ``port`` (and ``smsc_changes``, e.g. ``binds=1``)."""
    return config.model_copy(update={"smscs": tuple(
        smsc.model_copy(update={"port": port, **smsc_changes}) for smsc in config.smscs)})
