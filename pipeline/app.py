"""The faust application, built by a factory: one worker process runs every agent of the flow.

``smsflow worker`` calls :func:`create_app` with the settings it read and runs the result.
Nothing here runs at import: importing an agent module builds no app, reads no environment
and creates no directory, so the agents' pure parts are unit-tested on their own and
:func:`create_app` can build a worker for tests from explicit settings.

Scaling out is starting more workers with the same app id: faust spreads the partitions of
every topic (and the tables that follow them) across the group. All topic values are raw bytes
at the faust level; agents decode them with our Avro codec so a bad record becomes a rejection
event instead of a crashed or silently skipping stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import faust
import mode

from pipeline.backlog_batching import batch_in_backlogs
from pipeline.bind_watch import BindWatcher
from pipeline.changelog_cache import ChangelogCache
from pipeline.config_watch import ConfigWatcher
from pipeline.faust_patches import (
    auth_refusal,
    check_pins,
    guarded_consumer,
    lean_sensors,
    raw_events,
)
from pipeline.faust_patches.changelog_writes import route_changelogs
from pipeline.faust_patches.commit_hooks import add_commit_barrier
from pipeline.faust_patches.fetch_wait import FetchShape, adapt_fetches, shorten_fetch_wait
from pipeline.faust_patches.fixed_waits import PromptTableManager, PromptWorker
from pipeline.faust_patches.raw_events import RawBytesSchema
from pipeline.outputs import OutputProducer, OutputTopic
from pipeline.roles import SharedChangelogTable, runs_delivery, runs_routing
from pipeline.scheduling import ScheduledStage
from smsflow.domain.tracking.windows import WindowState
from smsflow.kafka_refusal import report_refusal
from smsflow.kafka_security import faust_credentials, kafka_connection
from smsflow.settings import Settings
from smsflow.topics import CONFIG, SMSC_BINDS, topic_name

__all__ = ["Worker", "build_app", "create_app"]


@dataclass
class Worker:
    """One worker's faust app and what its agents share (built by :func:`build_app`)."""

    app: faust.App
    settings: Settings
    #: What the agents pass on goes through librdkafka, not faust's producer
    #: (pipeline/outputs.py); the guarded consumer waits for these records before it commits
    #: their sources.
    outputs: OutputProducer
    #: Table changelog writes, held and coalesced per key until the next commit
    #: (pipeline/changelog_cache.py); its flush is the commit barrier.
    changelogs: ChangelogCache
    config_watcher: ConfigWatcher
    #: The senders' bind reports per SMSC (``sms.smsc-binds``), for route health.
    bind_watcher: BindWatcher
    #: The faust app id: this worker's consumer group (pipeline/roles.py).
    group_id: str
    #: The scheduled stages the agents created (router, throttle), for the metrics page.
    stages: list[ScheduledStage[Any]] = field(default_factory=list)
    _outputs_by_topic: dict[str, OutputTopic] = field(default_factory=dict)

    def name(self, topic: str) -> str:
        """The full name of one of our topics (``smsflow.topics``), with the prefix."""
        return topic_name(self.settings, topic)

    def topic(self, *topics: str) -> faust.TopicT:
        """An input topic (or several read as one) with raw bytes keys and values."""
        return self.app.topic(
            *(self.name(topic) for topic in topics),
            schema=RawBytesSchema(),  # bytes as fetched (pipeline/faust_patches/raw_events.py)
            internal=False,
        )

    def output(self, topic: str) -> OutputTopic:
        """The topic, to send to through the worker's output producer."""
        name = self.name(topic)
        out = self._outputs_by_topic.get(name)
        if out is None:
            out = self._outputs_by_topic[name] = OutputTopic(self.outputs, name)
        return out


def build_app(settings: Settings) -> Worker:
    """The faust app with its consumer corrections and output producer; no agents yet."""
    check_pins()  # the faust patches were written against exactly these versions
    # The delivery role's own group (pipeline/roles.py); written out here, not in a helper,
    # so that tests/k8s/group_scan.py sees both names faust may join (it follows the variable
    # into faust.App below).
    group_id = (f"{settings.app_id}-delivery" if settings.worker_role == "delivery"
                else settings.app_id)
    datadir = (settings.home / "worker" / group_id).resolve()
    connection = kafka_connection(settings)  # resolves the SASL password once
    # A refused SASL login of any aiokafka connection ends the worker (smsflow/kafka_refusal.py).
    auth_refusal.install(connection.security, report_refusal)
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        group_id,
        broker=f"kafka://{settings.kafka_bootstrap.replace(',', ';kafka://')}",
        # TLS/SASL of SMSFLOW_KAFKA_SECURITY_PROTOCOL (None: plaintext, faust's default).
        broker_credentials=faust_credentials(connection.security),
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        web_port=settings.worker_web_port,
        web_bind=settings.metrics_host,  # SMSFLOW_METRICS_HOST (default 127.0.0.1)
        # Only our /metrics page: faust's own views would serve table contents (pending
        # deliveries, quotas) and the partition map to anyone who can reach the port.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        # Fail over a dead worker's partitions within seconds, not faust's default minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        producer_acks=-1,
        producer_linger_ms=5,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=True,
        table_cleanup_interval=30.0,
        # An unexpected exception in an agent stops the whole worker (and its supervisor
        # restarts it), instead of faust's default of leaving the worker up with that agent
        # silently dead.
        agent_supervisor=mode.CrashingSupervisor,
        # Without faust's and mode's fixed sleeps at start and stop (~3 s per worker).
        TableManager=PromptTableManager,
        # Changelogs named after the platform's app id in every role (pipeline/roles.py).
        Table=SharedChangelogTable,
        Worker=PromptWorker,
    )
    # Before anything creates the consumer: faust's own loses or strands records across
    # rebalances (pipeline/faust_patches/guarded_consumer.py).
    guarded_consumer.install(app)
    lean_sensors.install(app)  # before any stream or table binds the sensor methods
    raw_events.install(app)  # before the conductor compiles its handlers
    outputs = OutputProducer(connection, **{"linger.ms": settings.output_linger_ms})
    changelogs = ChangelogCache(outputs, hold_s=settings.changelog_hold_ms / 1000)
    # Before every commit and every revocation: held table changes, then every output.
    add_commit_barrier(app, changelogs.flush)
    worker = Worker(app, settings, outputs, changelogs,
                    ConfigWatcher(connection, topic_name(settings, CONFIG)),
                    BindWatcher(connection, topic_name(settings, SMSC_BINDS),
                                grace_s=settings.bind_down_grace_s),
                    group_id=group_id)

    @app.task
    async def shorten_fetches() -> None:
        """Worker-wide consumer fix that needs the started consumer, then the fetch shape
        that follows the traffic (pipeline/faust_patches/fetch_wait.py)."""
        fetcher = await shorten_fetch_wait(app, settings.fetch_max_wait_ms,
                                           settings.fetch_min_bytes)
        if fetcher is not None and settings.fetch_trickle_below_per_s > 0:
            await adapt_fetches(
                fetcher, FetchShape(settings.fetch_min_bytes, settings.fetch_max_wait_ms),
                settings.fetch_trickle_below_per_s,
                lambda: getattr(app.consumer, "records_received", 0))

    if settings.backlog_hand_over_ms > 0:
        @app.task
        async def batch_outputs_in_backlogs() -> None:
            """Fuller output batches while the worker is behind (pipeline/backlog_batching.py)."""
            await batch_in_backlogs(outputs, settings.backlog_hand_over_ms / 1000,
                                    lambda: getattr(app.consumer, "lag", lambda: 0)())

    @app.task
    async def reread_stranded_records() -> None:
        """Seek back to records faust dropped before processing (see
        pipeline.faust_patches.guarded_consumer)."""
        await guarded_consumer.watch_for_stranded_records(app)

    return worker


def create_app(settings: Settings) -> Worker:
    """The whole worker: :func:`build_app` plus the agents, tasks and tables of its role
    (``settings.worker_role``, pipeline/roles.py) and the /metrics page."""
    # Imported here: the agent modules import this one (for Worker).
    from pipeline import runtime, web
    from pipeline.agents import (
        delivery,
        offpeak,
        opt_out,
        quarantine,
        router,
        throttle,
        tracking,
    )

    worker = build_app(settings)
    runtime.register(worker)
    if runs_routing(settings.worker_role):
        router.register(worker, quarantine.register(worker), opt_out.register(worker))
        throttle.register(worker, offpeak.register(worker))
    delivery_counts: Callable[[], dict[str, int]] = dict
    owned_windows: Callable[[], list[tuple[str, WindowState]]] = list
    if runs_delivery(settings.worker_role):
        delivery_counts = partial(dict, delivery.register(worker).counts)
        owned_windows = tracking.register(worker)
    web.register(worker, delivery_counts=delivery_counts, owned_windows=owned_windows)
    # Every table exists now (the agents declare them): their changelogs go through the
    # changelog cache and the output producer too.
    route_changelogs(worker.app.tables, worker.changelogs)
    return worker
