"""SMPP 3.4 SMSC simulator (``smsflow smsc-sim``): see ``docs/smsc-simulator.md``."""

from .config import AccountConfig, FailureStatus, ProfileConfig, SimulatorConfig, load_config
from .server import SimStats, SmscSimulator
from .thread import SimulatorThread

__all__ = [
    "AccountConfig",
    "FailureStatus",
    "ProfileConfig",
    "SimStats",
    "SimulatorConfig",
    "SimulatorThread",
    "SmscSimulator",
    "load_config",
]
