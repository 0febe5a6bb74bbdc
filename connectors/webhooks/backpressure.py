"""Which partitions to pause so memory stays bounded (pure, with hysteresis).

Two things can grow without bound while an endpoint is slow or dead:

* a tenant's backlog (reports queued or being retried): each holds a decoded report and its
  body. Over ``tenant_high`` the partition the tenant's reports come from is paused, until the
  backlog is down to ``tenant_low``.
* a partition's ledger: one dead tenant holds the partition's commit back while the other
  tenants' reports keep finishing behind it. Each costs only an offset, but the count is
  capped too (``ledger_high`` / ``ledger_low``).

A partition stays paused while anything holds it. Pausing a partition delays every tenant on
it: this memory cap is the one place where one tenant's trouble can slow another, so the
bounds should sit well above a normal burst.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_LEDGER = "<ledger>"  # holder name of the ledger bound; not a valid tenant id (ids are [a-z0-9])


@dataclass(frozen=True)
class Changes:
    pause: frozenset[int] = frozenset()
    resume: frozenset[int] = frozenset()


@dataclass
class Backpressure:
    tenant_high: int = 1_000
    tenant_low: int = 500
    ledger_high: int = 20_000
    ledger_low: int = 10_000
    _holders: dict[int, set[str]] = field(default_factory=dict)  # partition -> who holds it

    def __post_init__(self) -> None:
        tenant_ok = 0 <= self.tenant_low < self.tenant_high
        if not (tenant_ok and 0 <= self.ledger_low < self.ledger_high):
            raise ValueError("each low-water mark must be below its high-water mark")

    def paused(self) -> frozenset[int]:
        return frozenset(self._holders)

    def tenant(self, tenant_id: str, backlog: int, partition: int) -> Changes:
        """After the tenant's backlog changed; ``partition`` is where its latest report came
        from (a tenant is keyed to one partition unless the topic was grown)."""
        if backlog >= self.tenant_high:
            return self._hold(partition, tenant_id)
        if backlog <= self.tenant_low:
            return self._release(tenant_id)
        return Changes()

    def ledger(self, partition: int, pending: int) -> Changes:
        if pending >= self.ledger_high:
            return self._hold(partition, _LEDGER)
        if pending <= self.ledger_low:
            return self._release(_LEDGER, partition)
        return Changes()

    def forget(self, partition: int) -> None:
        """The partition was revoked: a new assignment starts unpaused."""
        self._holders.pop(partition, None)

    def _hold(self, partition: int, holder: str) -> Changes:
        holders = self._holders.setdefault(partition, set())
        newly = not holders
        holders.add(holder)
        return Changes(pause=frozenset({partition}) if newly else frozenset())

    def _release(self, holder: str, only: int | None = None) -> Changes:
        resumed: set[int] = set()
        for partition, holders in list(self._holders.items()):
            if (only is None or partition == only) and holder in holders:
                holders.discard(holder)
                if not holders:
                    del self._holders[partition]
                    resumed.add(partition)
        return Changes(resume=frozenset(resumed))
