"""``smsflow capacity ... --png``: the weekly pattern with the current peak and planned capacity.

matplotlib is an optional extra (``pip install 'smsflow[capacity]'``): it pulls in numpy and
pillow, which no running process needs. The Agg backend renders to a file without a display.
"""

from __future__ import annotations

from pathlib import Path

from smsflow.domain.capacity import CapacityPlan, VolumePatterns
from smsflow.domain.capacity.patterns import SECONDS_PER_HOUR, WEEKDAYS
from smsflow.domain.errors import PermanentError


class PlotUnavailableError(PermanentError, RuntimeError):
    """matplotlib is not installed."""


def write_png(path: Path, patterns: VolumePatterns, plan: CapacityPlan) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailableError(
            "--png needs matplotlib: pip install 'smsflow[capacity]'"
        ) from exc
    weekly = [parts / SECONDS_PER_HOUR for parts in patterns.weekly_parts]
    figure, axes = plt.subplots(figsize=(12, 5))
    try:
        axes.plot(range(len(weekly)), weekly, label="mean parts/s by hour of week (UTC)")
        axes.axhline(plan.peak_parts_per_s, color="tab:orange", linestyle="--",
                     label=f"current peak {plan.peak_parts_per_s:.1f} parts/s")
        axes.axhline(plan.planned_parts_per_s, color="tab:red",
                     label=(f"planned capacity {plan.planned_parts_per_s:.1f} parts/s "
                            f"({plan.target.growth:g}x peak + {plan.target.headroom:.0%})"))
        for event in patterns.events:
            axes.axhline(event.peak.parts_per_s, color="tab:purple", linestyle=":",
                         label=f"{event.event.name} peak {event.peak.parts_per_s:.1f} parts/s")
        axes.set_xticks([day * 24 for day in range(7)], list(WEEKDAYS))
        axes.set_xlim(0, len(weekly) - 1)
        axes.set_ylim(bottom=0)
        axes.set_ylabel("SMS parts per second")
        axes.set_title(f"smsflow weekly pattern, {patterns.first_hour.date()} to "
                       f"{patterns.last_hour.date()}")
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", fontsize="small")
        figure.tight_layout()
        figure.savefig(path, format="png", dpi=100)
    finally:
        plt.close(figure)
