"""Merging runner results into one fleet result: additive data first, statistics after.

Counts, sums, minima and maxima merge exactly; percentiles are read from the merged sketches,
never averaged across runners. Windows are aligned on wall-clock seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .aggregates import MAX_FOLDED_LISTED, Aggregate, Window
from .runner_result import RunnerResult

__all__ = ["FleetResult", "merge", "merge_windows", "metric_values"]

TREND_STATS = ("avg", "min", "med", "max", "p(50)", "p(90)", "p(95)", "p(99)", "p(99.9)")


@dataclass
class FleetResult:
    aggregates: dict[str, Aggregate] = field(default_factory=dict)
    windows: dict[int, Window] = field(default_factory=dict)
    #: Write items acknowledged per writer, over every runner.
    writes: dict[str, int] = field(default_factory=dict)
    #: The test's length as k6 measures rates: the longest runner's test run, in seconds.
    duration_s: float = 0.0
    #: Request names some runner counted under "(other)", not apart: their per-name windows
    #: miss those samples (listed up to MAX_FOLDED_LISTED; ``names_folded_more``: more).
    names_folded: list[str] = field(default_factory=list)
    names_folded_more: bool = False
    #: When the earliest runner with samples started its test (unix time; None: none did):
    #: where a scenario's seconds since the start begin (a population's plateau).
    started_at: float | None = None

    def folded(self) -> dict[str, object]:
        """summary.json's ``names_folded``: which names have no per-name latency of their own
        (none: an empty list)."""
        return {"names": list(self.names_folded), "more": self.names_folded_more}


def merge(results: Sequence[RunnerResult]) -> FleetResult:
    fleet = FleetResult()
    for result in results:
        for key, agg in result.aggregates.items():
            mine = fleet.aggregates.get(key)
            if mine is None:
                fleet.aggregates[key] = agg.copy()
            else:
                mine.merge(agg)
        for writer, count in result.writes.items():
            fleet.writes[writer] = fleet.writes.get(writer, 0) + count
    fleet.windows = merge_windows([result.windows for result in results])
    fleet.duration_s = max((_test_seconds(r) for r in results), default=0.0)
    fleet.started_at = min(
        (r.started_at for r in results if r.started_at and r.windows), default=None
    )
    folded = sorted({name for r in results for name in r.names_folded})
    fleet.names_folded = folded[:MAX_FOLDED_LISTED]
    fleet.names_folded_more = len(folded) > MAX_FOLDED_LISTED or any(
        r.names_folded_more for r in results
    )
    return fleet


def merge_windows(sources: Sequence[Mapping[int, Window]]) -> dict[int, Window]:
    """The fleet's windows: every source's window of each second added up, in time order
    (:mod:`._window_merge`: one packed chunk of each runner decoded at a time)."""
    # numpy (a Bokeh dependency) only when windows are merged: the runner image has none, and
    # its coordinator imports this module for metric_values.
    from ._window_merge import merge_windows as merged  # noqa: PLC0415

    return merged(sources)


def _test_seconds(result: RunnerResult) -> float:
    """How long k6 ran the test in this runner, as k6 divides its rates by it.

    k6's summary export carries count and rate for every counter, so count / rate is exactly
    k6's test run duration; the wall clock around the runner (which polls k6 once a second)
    is the fallback when k6 wrote no summary.
    """
    metrics = (result.k6_summary or {}).get("metrics", {})
    for name in ("iterations", "http_reqs", "data_sent"):
        counter = metrics.get(name) or {}
        count, rate = counter.get("count"), counter.get("rate")
        if isinstance(count, int | float) and isinstance(rate, int | float) and count and rate:
            return float(count) / float(rate)
    if result.started_at and result.ended_at:
        return max(0.0, result.ended_at - result.started_at)
    return 0.0


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
        }
        named = ["med", *(s for s in TREND_STATS if s.startswith("p("))]
        qs = [0.5 if s == "med" else float(s[2:-1]) / 100 for s in named]
        values.update(zip(named, sketch.quantiles(qs), strict=True))  # one walk, not seven
        return values
    if agg.kind == "counter":
        rate = agg.total / duration_s if duration_s > 0 else 0.0
        return {"count": agg.total, "rate": rate}
    if agg.kind == "rate":
        rate = agg.total / agg.count if agg.count else 0.0
        return {"rate": rate, "passes": agg.total, "fails": agg.count - agg.total}
    value, low, high = agg.gauge()
    return {"value": value, "min": low, "max": high}
