"""Process settings, read once at start-up from the environment (prefix ``SMSFLOW_``).

One frozen tree passed down to whatever needs it; nothing below reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMSFLOW_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers. Point it at an existing cluster to skip the local broker."""

    topic_prefix: str = ""
    """Prepended to every topic name (lets tests and several environments share a cluster)."""

    home: Path = Path(".smsflow")
    """Project-local state: broker data, worker data, logs."""

    app_id: str = "smsflow"
    """faust application id; also the consumer-group prefix of the agents."""

    partitions: int = 4
    """Partitions of the flow topics when ``smsflow topics apply`` creates them."""

    replication_factor: int = 1

    default_validity_s: int = 86_400
    """Validity period when a request does not set one."""

    worker_web_port: int = 6066
    """Port of the faust worker's web server (metrics)."""

    log_level: str = "info"


def load_settings() -> Settings:
    return Settings()
