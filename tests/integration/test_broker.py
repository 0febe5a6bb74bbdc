"""The local broker for real: lifecycle, and round trips with both Kafka client libraries."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from smsflow.devstack import broker as broker_module
from smsflow.devstack.broker import (
    EXIT_NOT_RUNNING,
    EXIT_OK,
    BrokerError,
    LocalBroker,
    resolve_bootstrap,
)
from tests.integration.conftest import local_broker

needs_local_broker = pytest.mark.skipif(
    resolve_bootstrap() is not None,
    reason="SMSFLOW_KAFKA_BOOTSTRAP names an existing cluster: no local broker is managed",
)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="smsflow")
    broker_module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    result: int = args.func(args)
    return result


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for index, value in enumerate(values):
        producer.produce(topic, key=str(index).encode(), value=value)
    assert producer.flush(30) == 0, "messages still in flight after flush"


def _consume(bootstrap: str, topic: str, count: int, group: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: list[bytes] = []
    try:
        for _ in range(120):  # bounded: at most 120 polls of up to 1 s each
            if len(received) >= count:
                break
            for message in consumer.consume(num_messages=count, timeout=1.0):
                assert message.error() is None, message.error()
                value = message.value()
                assert value is not None
                received.append(value)
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return received


# -- lifecycle --------------------------------------------------------------------------------


@needs_local_broker
def test_start_is_idempotent_and_status_reports_running(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = local_broker()
    pid = broker.pid()
    assert pid is not None
    assert broker.is_running()

    assert broker.start() == kafka_bootstrap
    assert not broker.launched
    assert broker.pid() == pid

    capsys.readouterr()
    home = str(broker.home)
    assert _cli("broker", "start", "--home", home, "--port", str(broker.port)) == EXIT_OK
    assert capsys.readouterr().out.strip() == kafka_bootstrap
    assert _cli("broker", "status", "--home", home) == EXIT_OK
    out = capsys.readouterr().out
    assert f"pid {pid}" in out and kafka_bootstrap in out
    assert broker.pid() == pid


@needs_local_broker
def test_start_refuses_a_port_taken_by_another_process(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    taken_port = int(kafka_bootstrap.rsplit(":", 1)[1])
    (free_controller_port,) = _free_ports(1)
    stranger = LocalBroker(home=tmp_path, port=taken_port, controller_port=free_controller_port)
    with pytest.raises(BrokerError, match="already in use"):
        stranger.start(timeout_s=10)
    assert stranger.pid() is None


@needs_local_broker
@pytest.mark.slow
def test_stop_and_start_keep_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A private broker (own home, own ports) so the shared one on 9092 is never disturbed."""
    port, controller_port = _free_ports(2)
    broker = LocalBroker(home=tmp_path / "home", port=port, controller_port=controller_port)
    broker.exit_with_starter = True  # a killed test run must not leave it behind
    cli_args = ("--home", str(broker.home), "--port", str(port))
    topic = f"persist-{uuid.uuid4().hex[:8]}"
    try:
        bootstrap = broker.start()
        assert bootstrap == f"127.0.0.1:{port}"
        cluster_id = broker.cluster_id()
        assert cluster_id

        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
        _produce(bootstrap, topic, [b"survives-a-restart"])

        assert broker.stop() is True
        assert not broker.is_running()
        assert not broker.pid_file.exists()
        assert broker.stop() is False  # idempotent
        assert _cli("broker", "status", *cli_args) == EXIT_NOT_RUNNING
        assert _cli("broker", "stop", *cli_args) == EXIT_OK

        assert broker.start() == bootstrap
        assert broker.cluster_id() == cluster_id
        assert _consume(bootstrap, topic, 1, group="persist") == [b"survives-a-restart"]
        capsys.readouterr()
        assert _cli("broker", "status", *cli_args) == EXIT_OK
        assert "running" in capsys.readouterr().out
    finally:
        broker.stop()
    assert broker.pid() is None


# -- client round trips -------------------------------------------------------------------------


def test_confluent_kafka_round_trip(kafka_bootstrap: str, topic_factory) -> None:
    topic = topic_factory(partitions=1)
    values = [f"message-{i}".encode() for i in range(200)]
    _produce(kafka_bootstrap, topic, values)

    assert _consume(kafka_bootstrap, topic, len(values), group=f"g-{topic}") == values


@pytest.mark.asyncio
async def test_aiokafka_round_trip_with_consumer_group(kafka_bootstrap: str, topic_factory) -> None:
    topic = topic_factory(partitions=3)
    group = f"g-{topic}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(90):
            await producer.send(topic, f"v{i}".encode(), key=f"k{i % 9}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[bytes] = []
    try:
        for _ in range(60):  # bounded: at most 60 fetches of up to 1 s each
            if len(received) >= 90:
                break
            batches = await consumer.getmany(timeout_ms=1000)
            received += [m.value for messages in batches.values() for m in messages]
        assert consumer.assignment() == {TopicPartition(topic, p) for p in range(3)}
        await consumer.commit()
        committed = [await consumer.committed(TopicPartition(topic, p)) for p in range(3)]
    finally:
        await consumer.stop()

    assert sorted(received) == sorted(f"v{i}".encode() for i in range(90))
    assert sum(c or 0 for c in committed) == 90


def test_clients_interoperate(kafka_bootstrap: str, topic_factory) -> None:
    """What aiokafka (faust) writes, confluent-kafka reads: the platform mixes both."""
    topic = topic_factory()

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, compression_type="gzip")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"from-aiokafka", key=b"k")
        finally:
            await producer.stop()

    asyncio.run(produce())
    assert _consume(kafka_bootstrap, topic, 1, group=f"g-{topic}") == [b"from-aiokafka"]


# -- faust-streaming ----------------------------------------------------------------------------

FAUST_APP = '''
"""A minimal faust worker: forward SRC -> DST upper-cased, count per key in a Table."""
import asyncio, os, sys, tempfile

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

BOOTSTRAP, SRC, DST, APP_ID = (os.environ[k] for k in ("BOOTSTRAP", "SRC", "DST", "APP_ID"))
N = int(os.environ["N"])
app = faust.App(
    APP_ID,
    broker=f"kafka://{BOOTSTRAP}",
    datadir=tempfile.mkdtemp(),
    web_enabled=False,
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    topic_partitions=1,
    topic_replication_factor=1,
    key_serializer="raw",
    value_serializer="raw",
    processing_guarantee=os.environ["GUARANTEE"],
)
src = app.topic(SRC, key_type=bytes, value_type=bytes, partitions=1)
dst = app.topic(DST, key_type=bytes, value_type=bytes, partitions=1)
counts = app.Table("counts", default=int, partitions=1)


@app.agent(src)
async def forward(stream):
    async for key, value in stream.items():
        counts[key.decode()] += 1
        await dst.send(key=key, value=value.upper())


async def drive():
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    for i in range(N):
        await producer.send(SRC, f"m{i}".encode(), key=f"k{i % 3}".encode())
    await producer.stop()
    consumer = AIOKafkaConsumer(
        DST, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    received = []
    for _ in range(120):  # bounded: at most 120 fetches of up to 0.5 s
        if len(received) >= N:
            break
        batches = await consumer.getmany(timeout_ms=500)
        received += [m.value for messages in batches.values() for m in messages]
    await consumer.stop()
    ok = received == [f"M{i}".encode() for i in range(N)] and sum(counts.values()) == N
    print(f"RESULT forwarded={len(received)} counts={dict(counts.items())} ok={ok}", flush=True)
    os._exit(0 if ok else 1)


@app.task
async def start_driver():
    asyncio.ensure_future(drive())


sys.argv = ["faust-app", "worker", "--loglevel", "warn", "--without-web"]
app.main()
'''


@pytest.mark.slow
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_faust_agent_forwards_through_the_broker(
    kafka_bootstrap: str, topic_factory, tmp_path: Path, guarantee: str
) -> None:
    src, dst = topic_factory(suffix="in"), topic_factory(suffix="out")
    app_id = f"compat-{uuid.uuid4().hex[:10]}"
    script = tmp_path / "faust_app.py"
    script.write_text(FAUST_APP)
    env = {
        **os.environ,
        "BOOTSTRAP": kafka_bootstrap,
        "SRC": src,
        "DST": dst,
        "APP_ID": app_id,
        "N": "120",
        "GUARANTEE": guarantee,
    }
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        _delete_topics_with_prefix(kafka_bootstrap, app_id)  # faust's changelog/leader topics
    output = result.stdout + result.stderr  # the faust worker redirects print() to its log
    assert result.returncode == 0, output[-5000:]
    assert "ok=True" in output
    assert "counts={'k0': 40, 'k1': 40, 'k2': 40}" in output


def _delete_topics_with_prefix(bootstrap: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(timeout=30)
