from __future__ import annotations

from api.admission import Admission, api_rate, retry_after_header
from smsflow.config.models import Tenant


def tenant(**fields: object) -> Tenant:
    return Tenant.model_validate({"id": "t", "name": "T", "rate_limit_pps": 50, **fields})


def test_default_api_rate_is_ten_times_the_send_rate_and_a_batch_fits() -> None:
    assert api_rate(tenant()) == (500.0, 1000.0)
    assert api_rate(tenant(api_rate_per_s=2000)) == (2000.0, 2000.0)
    assert api_rate(tenant(api_rate_per_s=5, api_burst=7)) == (5.0, 7.0)


def test_over_the_rate_says_how_long_to_wait_and_reserves_nothing() -> None:
    gate = Admission()
    slow = tenant(api_rate_per_s=2, api_burst=4)
    assert gate.admit(slow, 4, now=0.0) is None
    wait = gate.admit(slow, 1, now=0.0)
    assert wait == 0.5
    # Refused requests took nothing: after 0.5 s exactly one token is there.
    assert gate.admit(slow, 1, now=0.1) is not None
    assert gate.admit(slow, 1, now=0.5) is None
    assert gate.admit(slow, 1, now=0.5) is not None


def test_tenants_have_their_own_buckets() -> None:
    gate = Admission()
    a, b = tenant(id="a", api_rate_per_s=1, api_burst=1), tenant(id="b", api_rate_per_s=1,
                                                                 api_burst=1)
    assert gate.admit(a, 1, now=0.0) is None
    assert gate.admit(a, 1, now=0.0) is not None
    assert gate.admit(b, 1, now=0.0) is None


def test_instances_share_the_rate() -> None:
    gate = Admission(instances=2)
    assert gate.admit(tenant(api_rate_per_s=10, api_burst=10), 5, now=0.0) is None
    assert gate.admit(tenant(api_rate_per_s=10, api_burst=10), 1, now=0.0) == 0.2


def test_a_batch_larger_than_the_burst_waits_for_a_full_bucket_not_forever() -> None:
    gate = Admission()
    small = tenant(api_rate_per_s=10, api_burst=10)
    assert gate.admit(small, 1000, now=0.0) is None  # costs the whole burst


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"


def test_a_config_change_retunes_the_bucket() -> None:
    gate = Admission()
    assert gate.admit(tenant(api_rate_per_s=1, api_burst=1), 1, now=0.0) is None
    assert gate.admit(tenant(api_rate_per_s=100, api_burst=100), 1, now=0.1) is None
