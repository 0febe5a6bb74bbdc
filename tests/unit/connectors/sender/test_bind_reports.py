"""The sender's bind reports (connectors/sender/bind_reports.py): on change, as a heartbeat,
tombstones at stop."""

from __future__ import annotations

from connectors.sender.bind_reports import BindReporter
from connectors.sender.metrics import BindView
from connectors.smpp.models import BindState
from schemas.models import SmscBindStatus


def _view(smsc: str, n: int, state: BindState) -> BindView:
    return BindView(smsc=smsc, bind=f"{smsc}#{n}", state=state, in_flight=0, window_size=10,
                    binds=0, connection_losses=0, bind_failures=0)


def test_reports_on_change_and_as_heartbeat_only() -> None:
    reporter = BindReporter("t", lambda key, value: None, instance="pod-1", heartbeat_s=5)
    views = [_view("smsc-uk", 0, BindState.BOUND), _view("smsc-uk", 1, BindState.CONNECTING),
             _view("smsc-us", 0, BindState.BOUND)]
    first = reporter.due(views, 100.0)
    assert [(r.smsc_id, r.bound, r.configured) for r in first] == [("smsc-uk", 1, 2),
                                                                    ("smsc-us", 1, 1)]
    assert reporter.due(views, 101.0) == [], "nothing changed, no heartbeat due"
    views[2] = _view("smsc-us", 0, BindState.CONNECTING)
    (lost,) = reporter.due(views, 102.0)
    assert (lost.smsc_id, lost.bound, lost.instance) == ("smsc-us", 0, "pod-1")
    heartbeat = reporter.due(views, 105.5)
    assert [r.smsc_id for r in heartbeat] == ["smsc-uk"], "smsc-us reported at 102"


def test_withdraw_writes_a_tombstone_per_reported_smsc() -> None:
    written: list[tuple[bytes, bytes | None]] = []
    reporter = BindReporter("unit.sms.smsc-binds", lambda k, v: written.append((k, v)),
                            instance="pod-1")
    reporter.report([_view("smsc-uk", 0, BindState.BOUND)], 100.0)
    (key, value), = written
    assert key == b"smsc-uk/pod-1" and value is not None
    assert SmscBindStatus.from_avro(value).bound == 1
    reporter.withdraw()
    assert written[-1] == (b"smsc-uk/pod-1", None)


def test_partitions_are_reported_and_a_lost_last_slot_reports_zero() -> None:
    reporter = BindReporter("t", lambda key, value: None, instance="pod-1", heartbeat_s=5)
    views = [_view("smsc-uk", 0, BindState.BOUND)]
    (first,) = reporter.due(views, 100.0, partitions=[3, 1])
    assert first.throttled_partitions == [1, 3]
    (moved,) = reporter.due(views, 100.5, partitions=[1])
    assert moved.throttled_partitions == [1], "a new assignment is reported at once"
    (gone,) = reporter.due([], 101.0, partitions=[1])
    assert (gone.smsc_id, gone.bound, gone.configured) == ("smsc-uk", 0, 0)
