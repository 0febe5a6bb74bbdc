"""The faust application: one worker process runs every agent of the flow.

``smsflow worker`` starts it. Scaling out is starting more workers with the same app id: faust
spreads the partitions of every topic (and the tables that follow them) across the group.
All topic values are raw bytes at the faust level; agents decode them with our Avro codec so a
bad record becomes a rejection event instead of a crashed or silently skipping stream.
"""

from __future__ import annotations

import faust
import mode

from pipeline import guarded_consumer
from pipeline.fetch_wait import shorten_fetch_wait
from pipeline.outputs import OutputProducer, OutputTopic
from smsflow.settings import Settings, load_settings
from smsflow.topics import (
    CONFIG,
    DEFERRED,
    DLR,
    DLR_PARTS,
    DLR_PARTS_TIMERS,
    DLR_RAW,
    DLR_TIMERS,
    HELD,
    REJECTED,
    ROUTE_HEALTH,
    ROUTED,
    SENT,
    SUBMITTED,
    THROTTLED,
    TRACKING_DELTAS,
    topic_name,
)

settings: Settings = load_settings()
_datadir = (settings.home / "worker" / settings.app_id).resolve()
_datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level

app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.kafka_bootstrap.replace(',', ';kafka://')}",
    datadir=str(_datadir),
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    topic_allow_declare=True,
    web_port=settings.worker_web_port,
    web_bind="127.0.0.1",
    # Only our /metrics page: faust's own views would serve table contents (pending deliveries,
    # quotas) and the partition map to anyone who can reach the port.
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
    # An unexpected exception in an agent stops the whole worker (and its supervisor restarts
    # it), instead of faust's default of leaving the worker up with that agent silently dead.
    agent_supervisor=mode.CrashingSupervisor,
)
# Before anything creates the consumer: faust's own loses or strands records across rebalances.
guarded_consumer.install(app)


def _raw_topic(*names: str) -> faust.TopicT:
    return app.topic(
        *(topic_name(settings, name) for name in names),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        internal=False,
    )


submitted_topic = _raw_topic(SUBMITTED)
routed_topic = _raw_topic(ROUTED)
throttled_topic = _raw_topic(THROTTLED)
correlator_inputs = _raw_topic(SENT, DLR_RAW, DLR_TIMERS)
dlr_timers_topic = _raw_topic(DLR_TIMERS)
aggregator_inputs = _raw_topic(DLR_PARTS, DLR_PARTS_TIMERS)
dlr_parts_topic = _raw_topic(DLR_PARTS)
dlr_parts_timers_topic = _raw_topic(DLR_PARTS_TIMERS)
dlr_topic = _raw_topic(DLR)
tracking_inputs = _raw_topic(SENT, DLR)
tracking_deltas_topic = _raw_topic(TRACKING_DELTAS)
route_health_topic = _raw_topic(ROUTE_HEALTH)
rejected_topic = _raw_topic(REJECTED)
deferred_topic = _raw_topic(DEFERRED)
config_topic_name = topic_name(settings, CONFIG)
sent_topic_name = topic_name(settings, SENT)
routed_topic_name = topic_name(settings, ROUTED)
throttled_topic_name = topic_name(settings, THROTTLED)
dlr_parts_topic_name = topic_name(settings, DLR_PARTS)
dlr_topic_name = topic_name(settings, DLR)
dlr_raw_topic_name = topic_name(settings, DLR_RAW)
dlr_timers_topic_name = topic_name(settings, DLR_TIMERS)
dlr_parts_timers_topic_name = topic_name(settings, DLR_PARTS_TIMERS)
route_health_topic_name = topic_name(settings, ROUTE_HEALTH)
deferred_topic_name = topic_name(settings, DEFERRED)
held_topic_name = topic_name(settings, HELD)

# What the agents pass on goes through librdkafka, not faust's producer (pipeline/outputs.py);
# the guarded consumer waits for these records before it commits their sources.
outputs = OutputProducer(settings.kafka_bootstrap)
guarded_consumer.add_commit_barrier(app, outputs.flush)


def _output(name: str) -> OutputTopic:
    return OutputTopic(outputs, topic_name(settings, name))


routed_out = _output(ROUTED)
throttled_out = _output(THROTTLED)
dlr_parts_out = _output(DLR_PARTS)
dlr_parts_timers_out = _output(DLR_PARTS_TIMERS)
dlr_timers_out = _output(DLR_TIMERS)
dlr_out = _output(DLR)
tracking_deltas_out = _output(TRACKING_DELTAS)
route_health_out = _output(ROUTE_HEALTH)
rejected_out = _output(REJECTED)
deferred_out = _output(DEFERRED)
held_out = _output(HELD)
submitted_out = _output(SUBMITTED)  # quarantine releases send held records back



@app.task
async def shorten_fetches() -> None:
    """Worker-wide consumer fix that needs the started consumer (see the module)."""
    await shorten_fetch_wait(app)


@app.task
async def reread_stranded_records() -> None:
    """Seek back to records faust dropped before processing (see pipeline.guarded_consumer)."""
    await guarded_consumer.watch_for_stranded_records(app)


# Importing the agents registers them on the app.
from pipeline import web  # noqa: E402, F401  (the /metrics page)
from pipeline.agents import delivery, router, throttle, tracking  # noqa: E402, F401
from pipeline.changelog_writes import route_changelogs  # noqa: E402

# Every table exists now (the agents declare them): their changelogs go through `outputs` too.
route_changelogs(app.tables, outputs)
