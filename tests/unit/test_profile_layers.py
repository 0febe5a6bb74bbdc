"""bench/profile_summary.py --layers: which layer a py-spy sample's own time belongs to."""

from __future__ import annotations

from pathlib import Path

from bench.profile_summary import OTHER, by_layer, layer_of

FRAMEWORK, LOOP, _CLIENT, CODECS, DOMAIN, ADAPTERS = (
    "stream framework (faust, mode, aiokafka, our patches of them)",
    "event loop and threads (asyncio, selectors, threading, queue)",
    "librdkafka client (confluent_kafka)",
    "codecs and models (Avro, pydantic, json)",
    "pure domain (smsflow/domain)",
    "our adapters (pipeline, connectors, smsflow, api)",
)


def test_the_leaf_frame_decides() -> None:
    assert layer_of(["main (smsflow/cli/__init__.py:68)",
                     "Stream._c_aiter (faust/streams.py:1003)"]) == FRAMEWORK
    assert layer_of(["x (faust/streams.py:1)",
                     "GuardedConsumer._deliver (pipeline/faust_patches/guarded_consumer.py:9)"]
                    ) == FRAMEWORK
    assert layer_of(["x (faust/streams.py:1)", "Router.route (pipeline/agents/router.py:150)"]
                    ) == ADAPTERS
    assert layer_of(["x (pipeline/agents/router.py:1)", "decide (smsflow/domain/route_engine.py:3)"]
                    ) == DOMAIN
    assert layer_of(["x (pipeline/a.py:1)", "read (<avro read>:12)"]) == CODECS
    assert layer_of(["x (pipeline/a.py:1)", "BaseModel.model_validate (pydantic/main.py:732)"]
                    ) == CODECS
    assert layer_of(["x (pipeline/a.py:1)", "Handle._run (asyncio/events.py:84)"]) == LOOP
    assert layer_of(["x (pipeline/a.py:1)", "f (logging/__init__.py:1)"]) == OTHER


def test_generated_code_counts_with_its_caller() -> None:
    dataclass_init = "__create_fn__.<locals>.__init__ (<string>:3)"
    assert layer_of(["x (faust/a.py:1)", "plan (smsflow/domain/encoding.py:5)", dataclass_init]
                    ) == DOMAIN
    assert layer_of(["ABC.__instancecheck__ (<frozen abc>:119)"]) == OTHER


def test_samples_add_up_by_layer(tmp_path: Path) -> None:
    profile = tmp_path / "profile.txt"
    profile.write_text(
        "main (smsflow/cli/__init__.py:1);Stream._c_aiter (faust/streams.py:1) 30\n"
        "main (smsflow/cli/__init__.py:1);decide (smsflow/domain/route_engine.py:3) 10\n"
        "\n")
    total, layers = by_layer(profile)
    assert total == 40
    assert layers == {FRAMEWORK: 30, DOMAIN: 10}
