"""The sender's ``/healthz`` and ``/readyz`` (on its metrics port): see smsflow/probes.py."""

from __future__ import annotations

import time

from connectors.sender.service import SenderService
from connectors.smpp.models import BindState
from smsflow.probes import Probe, sender_probe


def probe(service: SenderService) -> Probe:
    views = service.bind_views()
    return sender_probe(
        now=time.monotonic(), last_round=service.last_round, joined=service.joined,
        binds_bound=sum(view.state is BindState.BOUND for view in views),
        binds_total=len(views),
    )
