"""Merging runner results into one fleet result: additive data first, statistics after.

Counts, sums, minima and maxima merge exactly; percentiles are read from the merged sketches,
never averaged across runners. Windows are aligned on wall-clock seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .collect import Aggregate, Window
from .result import RunnerResult

__all__ = ["FleetResult", "merge", "metric_values"]

TREND_STATS = ("avg", "min", "med", "max", "p(50)", "p(90)", "p(95)", "p(99)", "p(99.9)")


@dataclass
class FleetResult:
    aggregates: dict[str, Aggregate] = field(default_factory=dict)
    windows: dict[int, Window] = field(default_factory=dict)
    #: The test's length as k6 measures rates: first start to last end, in seconds.
    duration_s: float = 0.0


def merge(results: Sequence[RunnerResult]) -> FleetResult:
    fleet = FleetResult()
    for result in results:
        for key, agg in result.aggregates.items():
            mine = fleet.aggregates.get(key)
            if mine is None:
                fleet.aggregates[key] = Aggregate.from_dict(agg.to_dict())
            else:
                mine.merge(agg)
        for second, window in result.windows.items():
            if second in fleet.windows:
                fleet.windows[second].merge(window)
            else:
                fleet.windows[second] = Window.from_dict(window.to_dict())
    started = [r.started_at for r in results if r.started_at]
    ended = [r.ended_at for r in results if r.ended_at]
    if started and ended:
        fleet.duration_s = max(0.0, max(ended) - min(started))
    return fleet


def metric_values(agg: Aggregate, duration_s: float) -> dict[str, float]:
    """A metric's statistics under k6's names (``count``, ``rate``, ``p(95)``, ...)."""
    if agg.kind == "trend":
        sketch = agg.sketch
        if not sketch.count:
            return {"count": 0}
        values = {
            "count": float(sketch.count),
            "avg": sketch.mean,
            "min": sketch.minimum,
            "max": sketch.maximum,
            "med": sketch.quantile(0.5),
        }
        for stat in TREND_STATS:
            if stat.startswith("p("):
                values[stat] = sketch.quantile(float(stat[2:-1]) / 100)
        return values
    if agg.kind == "counter":
        rate = agg.total / duration_s if duration_s > 0 else 0.0
        return {"count": agg.total, "rate": rate}
    if agg.kind == "rate":
        rate = agg.total / agg.count if agg.count else 0.0
        return {"rate": rate, "passes": agg.total, "fails": agg.count - agg.total}
    value = 0.0 if math.isnan(agg.last) else agg.last
    return {
        "value": value,
        "min": agg.minimum if agg.count else 0.0,
        "max": agg.maximum if agg.count else 0.0,
    }
