"""The local development stack: what runs smsflow on one machine, for demos, tests and benchmarks.

Nothing in production imports this package. It sits on top of the layers (see
docs/architecture.md#layers): it starts a real Kafka broker and schema registry from Maven
(:mod:`.broker`, :mod:`.schema_registry`, both on :mod:`.java_service`; a 3-node
cluster for failover drills in :mod:`.cluster`), runs the platform's own
commands as processes (:mod:`.stack`), prepares isolated topics and configuration for a run
(:mod:`.harness`), pushes traffic and accounts for every message (:mod:`.flowrun`), and puts it
all together as ``smsflow demo`` (:mod:`.demo`).
"""
