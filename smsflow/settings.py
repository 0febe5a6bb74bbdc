"""Process settings, read once at start-up from the environment (prefix ``SMSFLOW_``).

One frozen tree passed down to whatever needs it; nothing below reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from smsflow.config.secrets import SecretRef
from smsflow.gc_policy import parse_thresholds

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


#: The stages a worker runs (``SMSFLOW_WORKER_ROLE``, pipeline/roles.py).
WorkerRole = Literal["all", "routing", "delivery"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMSFLOW_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers. Point it at an existing cluster to skip the local broker."""

    # Client security for an existing cluster (docs/configuration.md#kafka-security); every
    # Kafka client the project creates takes it from smsflow/kafka_security.py.
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretRef | None = None
    """A secret reference (``env:NAME``, ``file:/path``) or, with a warning, a literal."""

    kafka_ssl_ca_file: Path | None = None
    """CA bundle that signed the brokers' certificates; unset: the system's trust store."""

    kafka_ssl_cert_file: Path | None = None
    """Client certificate (PEM) for mutual TLS; needs ``kafka_ssl_key_file``."""

    kafka_ssl_key_file: Path | None = None

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

    gc_thresholds: str = "default"
    """The garbage collector's generation thresholds in the API, the sender and the worker
    (``gen0,gen1,gen2``): ``default`` is 50000,50,100, ``python`` CPython's own 700,10,10.
    Fewer collections took a third off the API's CPU per batch message and ~13 % off the
    sender's (docs/performance.md, "Garbage collection")."""

    worker_role: WorkerRole = "all"
    """The stages this worker runs (pipeline/roles.py): ``all`` every agent in one process;
    ``routing`` sms.submitted → sms.throttled (route, quarantine, opt-outs, off-peak,
    throttle); ``delivery`` sms.sent and receipts → sms.dlr (correlation, reports, route
    tracking), in its own consumer group ``<app_id>-delivery``. On two cores one routing and
    one delivery worker carried 7-10 % more than one ``all`` worker and cut the p99
    submit-to-report at a steady 1,000 msg/s from 2.8 s to 0.41 s (docs/performance.md,
    "Workers by role")."""

    worker_event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """The worker's event loop: uvloop took ~10 % off its CPU per message in a burst
    (docs/performance.md, "uvloop in the worker"); ``asyncio`` is Python's own."""

    fetch_min_bytes: int = 32_768
    """Bytes a fetch of the worker's and the sender's hot consumers waits for at the broker
    (up to ``fetch_max_wait_ms``) before it returns. Larger fetches mean fewer requests: at
    load this cut the broker's CPU per message by about a fifth and the worker's and sender's
    by a tenth (docs/performance.md#fetch-batching); ``1`` returns every fetch as soon as one
    record is there."""

    fetch_max_wait_ms: int = 20
    """The most a fetch waits at the broker for ``fetch_min_bytes``: the latency one hop may
    add when traffic is light (three hops from ``sms.submitted`` to the SMSC)."""

    fetch_trickle_below_per_s: float = 50.0
    """Below this many records a second reaching the worker's consumer (a message is ~6 worker
    records, so about 8 messages/s), its fetches return as soon as one record is there and
    wait at most 100 ms otherwise, instead of waiting for ``fetch_min_bytes`` up to
    ``fetch_max_wait_ms``: about one fetch per record instead of 50 a second, and no added
    wait at each hop. It goes back above twice this rate, checked every second. ``0`` turns
    it off (docs/performance.md#trickle-fetches)."""

    follower_fetch_max_wait_ms: int = 250
    """The same for the worker's consumers that only keep count: the tracking feed (delivery
    windows, ``sms.sent`` + ``sms.dlr``) and the throttle's AIMD feedback (``sms.sent``). A
    fetch that waits 20 ms comes back 50 times a second per consumer even when nothing
    arrives: at 20 ms these two cost the idle worker ~4 % of a core and the broker 2 to 5 %
    more than at 250 ms (docs/performance.md#follower-fetch-wait). At load they return as soon as
    ``fetch_min_bytes`` is there."""

    output_linger_ms: int = 5
    """How long the worker's output producer (``sms.routed``, ``sms.throttled``, the delivery
    topics, table changelogs) lets a record wait for others to the same partition before it
    sends a batch. Longer means fuller batches and fewer produce requests: 20 ms took ~10% off
    the CPU per message of a burst (broker -22%) and added ~40 ms to the median submit-to-sent
    latency at 250 msg/s (two hops; docs/performance.md#output-linger)."""

    sender_linger_ms: int = 5
    """The same for the sender's producer (``sms.sent`` outcomes, ``sms.dlr.raw`` receipts,
    ledger batches). librdkafka sends one produce request per partition, so at a steady rate a
    short linger means about one request per record: at 1,000 msg/s, 20 ms took ~10 % off the
    sender's CPU per message and ~10 % off the broker's, and added ~15 ms to the median
    submit-to-sent latency (the ledger's intents wait it out before their PDUs are written;
    docs/performance.md#a-steady-rate)."""

    changelog_hold_ms: int = 1000
    """How long the worker keeps a table change (quota rows, delivery windows, pending
    receipts, done markers) before it writes the changelog record; changes of one key meanwhile
    become one record, and a key set and deleted meanwhile none. Every commit writes what is
    held first, so a committed record's changes are always in the changelog; a crash loses
    only changes of uncommitted records, which are replayed (docs/performance.md#changelog-hold).
    ``0`` writes every change at once."""

    parts_batch_ms: float = 5.0
    """How long the worker's correlator keeps completed parts before it writes them to
    ``sms.dlr.parts``, one record per partition (pipeline/part_batches.py;
    docs/performance.md#batched-parts); in a backlog, as long as the output producer holds
    its records if that is longer. ``0`` writes one record per part."""

    receipt_batch_ms: float = 5.0
    """How long the sender keeps the receipts it parsed before it writes them to
    ``sms.dlr.raw``, one record per partition (connectors/sender/receipt_batches.py;
    docs/performance.md#batched-receipts). ``0`` writes one record per receipt, which workers
    older than the batches can read (docs/operations.md)."""

    sent_batch_ms: float = 5.0
    """How long the sender keeps its submit outcomes before it writes them to ``sms.sent``, one
    record per partition (connectors/sender/outcome_batches.py;
    docs/performance.md#batched-outcomes). ``0`` writes one record per part, which readers
    older than the batches can read (docs/operations.md#upgrading-to-batched-outcomes)."""

    backlog_hand_over_ms: int = 30
    """While the worker is behind (its consumer 2,000 records or more behind the partitions'
    ends, until under 500 for a second), its output records wait this long for others before
    librdkafka gets them, instead of 1 ms: fuller batches and fewer produce requests when a
    wait costs no one anything, since a record in a backlog waits for its place in the queue
    anyway. Light traffic never sees it.
    ``0`` turns it off (docs/performance.md#batching-in-a-backlog)."""

    bind_down_grace_s: float = 10.0
    """How long an SMSC may be without any bound connection before route health marks its
    routes DOWN (and the router stops choosing them). Shorter drops are ridden out: the
    sender holds the SMSC's messages until it re-binds (docs/delivery-tracking.md)."""

    sender_bind_leases: bool = False
    """Share each SMSC's ``binds`` among all sender processes (a lease per bind through Kafka)
    instead of opening that many binds in every process. Turn it on whenever more than one
    sender runs: docs/deploy.md#bind-leases."""

    sender_max_queued_parts_per_smsc: int = Field(default=2_000, ge=1)
    """Parts one SMSC may have queued in a sender (read, not yet in a window) before the
    partitions they came from pause; they resume at half. Only partitions carrying that
    SMSC's records wait (docs/architecture.md#sender)."""

    sender_max_queued_parts: int = Field(default=10_000, ge=1)
    """Parts queued in a sender across all SMSCs at which every partition pauses (the memory
    bound of last resort); they resume at half."""

    sender_metrics_port: int = 6067
    """Port of the sender's Prometheus page (``smsflow sender``; 0 turns it off)."""

    webhooks_metrics_port: int = 6068
    """Port of the webhooks connector's Prometheus page (0 turns it off)."""

    kafka_exporter_port: int = 6069
    """Port of ``smsflow kafka-exporter`` (consumer lag, group members, broker up)."""

    metrics_host: str = "127.0.0.1"
    """Address the sender, webhooks connector and Kafka exporter serve ``/metrics`` on. Set
    ``0.0.0.0`` where Prometheus scrapes from another host."""

    log_level: str = "info"

    deferred_release_per_s: float = 500.0
    """Messages per second each worker sends back from ``sms.deferred`` to ``sms.routed`` when an
    Economy off-peak window opens (docs/rate-limits.md): paced, so a night's backlog does not
    flood the throttle's memory at the window's first second. The routes' own limits still
    apply downstream."""

    # Delivery tracking (docs/delivery-tracking.md). Defaults suit production; tests shrink them.
    tracking_bucket_s: int = 60
    """Rolling windows are ``tracking_buckets`` buckets of this many seconds (15 min default).
    Changing the shape discards stored windows (they start empty)."""

    tracking_buckets: int = 15

    health_min_samples: int = 50
    """Terminal outcomes (and submits) a window needs before its rates count toward health."""

    health_recover_dwell_s: float = 300.0
    """A DEGRADED route must look good this long before it is HEALTHY again."""

    health_down_exit_dwell_s: float = 60.0
    """A DOWN route must stay below the exit error rate this long before it is DEGRADED."""

    health_probe_after_s: float = 600.0
    """A DEGRADED route with too little traffic to judge returns to HEALTHY after this long
    (half-open probe), so traffic comes back and is judged again. 0 disables probing."""

    health_evaluate_every_s: float = 10.0
    """Idle routes are re-evaluated this often (windows age; heartbeats to the router)."""

    dlr_expiry_grace_s: float = 600.0
    """After a part's validity period ends, wait this long for a late receipt, then report
    EXPIRED ourselves."""

    dlr_receipt_ttl_s: float = 3_600.0
    """A receipt with no submit outcome is dead-lettered (RECEIPT_UNMATCHED) after this long."""

    dlr_done_ttl_s: float = 3_600.0
    """A completed part or message is remembered this long so duplicates are dropped."""

    @field_validator("gc_thresholds")
    @classmethod
    def _gc_thresholds_parse(cls, value: str) -> str:
        parse_thresholds(value)  # a clear error at start-up, not a silent default
        return value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Self:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and (not self.kafka_sasl_username or self.kafka_sasl_password is None):
            raise ValueError(
                f"SMSFLOW_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "SMSFLOW_KAFKA_SASL_USERNAME and SMSFLOW_KAFKA_SASL_PASSWORD"
            )
        if not sasl and (self.kafka_sasl_username or self.kafka_sasl_password is not None):
            raise ValueError(
                "SMSFLOW_KAFKA_SASL_USERNAME/PASSWORD are set but "
                f"SMSFLOW_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} does not use "
                "SASL: set it to SASL_SSL (or SASL_PLAINTEXT)"
            )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError(
                "SMSFLOW_KAFKA_SSL_CERT_FILE and SMSFLOW_KAFKA_SSL_KEY_FILE go together (mTLS)"
            )
        tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        tls_files = (self.kafka_ssl_ca_file, self.kafka_ssl_cert_file)
        if not tls and any(f is not None for f in tls_files):
            raise ValueError(
                "SMSFLOW_KAFKA_SSL_* files are set but "
                f"SMSFLOW_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} does not use TLS"
            )
        return self


def load_settings() -> Settings:
    return Settings()
