from __future__ import annotations

from datetime import UTC, datetime

import pytest

from smsflow.config.quarantine import with_quarantine
from smsflow.config.store import UnknownTenant, load_yaml
from tests.paths import PLATFORM_CONFIG


def test_quarantine_sets_only_that_tenants_flag_and_release_clears_it() -> None:
    config = load_yaml(PLATFORM_CONFIG)
    quarantined = with_quarantine(config, "shopfast", True)
    flags = {t.id: t.quarantined for t in quarantined.tenants}
    assert flags["shopfast"] is True
    assert flags == {t.id: t.quarantined or t.id == "shopfast" for t in config.tenants}
    assert with_quarantine(quarantined, "shopfast", False) == config


def test_an_unknown_tenant_is_refused() -> None:
    with pytest.raises(UnknownTenant):
        with_quarantine(load_yaml(PLATFORM_CONFIG), "nobody", True)


def test_release_with_reject_held_records_the_instant_on_that_tenant_only() -> None:
    config = with_quarantine(load_yaml(PLATFORM_CONFIG), "shopfast", True)
    at = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    released = with_quarantine(config, "shopfast", False, reject_held_before=at)
    cutoffs = {t.id: t.reject_held_before for t in released.tenants}
    assert cutoffs.pop("shopfast") == at
    assert set(cutoffs.values()) == {None}
    assert not any(t.quarantined for t in released.tenants if t.id == "shopfast")
