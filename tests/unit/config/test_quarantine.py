from __future__ import annotations

import pytest

from smsflow.config.quarantine import UnknownTenant, with_quarantine
from smsflow.config.store import load_yaml
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
