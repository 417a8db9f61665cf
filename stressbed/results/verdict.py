"""Judging thresholds on merged fleet data, with k6's semantics, and one outcome k6 lacks.

A trend threshold reads avg/min/max/med/p(N) of the merged sketch; a counter's ``count`` and
``rate`` (per second over the test); a rate metric's share of non-zero samples; a gauge's
value. Where k6 reads a (sub)metric without samples as 0 and may pass it, here a threshold
with nothing to judge is "no data" and fails, unless the scenario marks it ``optional``: a
trend, rate or gauge with no sample (``p(95) < 1s`` on a request that never ran), or any
threshold of a run that measured no request and no iteration at all. A counter with no
samples in a run that did measure something is a true 0 (``dropped_iterations`` never
counted). A run measured something when it counted a request, an iteration or a population's
connection attempt.

``connected`` (a population's share of wanted agents connected over its plateau) has no k6
metric: it is read from the merged windows' levels (:mod:`stressbed.results.population`) and
is "no data" without a plateau, or when the plateau holds no measured second.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..scenario.thresholds import CONNECTED_METRIC, METRICS, Threshold
from .aggregates import Aggregate
from .merge import FleetResult, metric_values
from .population import Plateau, connected_share, start_second

__all__ = ["ThresholdResult", "Verdict", "evaluate", "judge", "measured", "observe"]


class Verdict(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


@dataclass(frozen=True)
class ThresholdResult:
    threshold: Threshold
    observed: float  # NaN when there was nothing to judge
    ok: bool
    no_data: bool = False

    @property
    def outcome(self) -> str:
        """``ok``, ``failed``, or ``no data`` (ok only when the threshold is optional)."""
        if self.no_data:
            return "no data"
        return "ok" if self.ok else "failed"

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.threshold.key,
            "expression": self.threshold.expression,
            "label": self.threshold.label,
            "observed": None if self.no_data else self.observed,
            "ok": self.ok,
            "outcome": self.outcome,
            "optional": self.threshold.optional,
            "abort_on_fail": self.threshold.abort_on_fail,
            # The whole threshold, so that a report can be rebuilt from summary.json alone.
            "definition": self.threshold.to_dict(),
        }


def observe(threshold: Threshold, aggregates: dict[str, Aggregate], duration_s: float) -> float:
    agg = aggregates.get(threshold.key)
    if agg is None:
        agg = Aggregate(METRICS.get(threshold.metric, "trend"))
    name = threshold.aggregation
    if agg.kind == "trend" and name.startswith("p(") and agg.sketch.count:
        # Just the percentile asked for, which need not be one of the summary's.
        return agg.sketch.quantile(float(name[2:-1]) / 100)
    return float(metric_values(agg, duration_s).get(name, 0.0))


def judge(threshold: Threshold, aggregates: dict[str, Aggregate], duration_s: float) -> bool:
    return threshold.passes(observe(threshold, aggregates, duration_s))


def measured(agg: Aggregate | None) -> bool:
    """The (sub)metric has at least one sample."""
    if agg is None:
        return False
    return agg.sketch.count > 0 if agg.kind == "trend" else agg.count > 0


def evaluate(
    thresholds: Sequence[Threshold], fleet: FleetResult, plateau: Plateau | None = None
) -> list[ThresholdResult]:
    """Each threshold judged on the merged data; ``plateau``: a population's steady part
    (seconds since the start), what ``connected`` is judged over."""
    aggregates = fleet.aggregates
    run_measured = any(
        measured(aggregates.get(metric))
        for metric in ("http_reqs", "iterations", "agent_connect_attempts")
    )
    results = []
    for threshold in thresholds:
        if threshold.metric == CONNECTED_METRIC:
            start = start_second(fleet.windows, fleet.started_at)
            share = connected_share(fleet.windows, start, plateau)
            if share is None:
                results.append(
                    ThresholdResult(threshold, math.nan, threshold.optional, no_data=True)
                )
            else:
                results.append(ThresholdResult(threshold, share, threshold.passes(share)))
            continue
        agg = aggregates.get(threshold.key)
        kind = agg.kind if agg is not None else METRICS.get(threshold.metric, "trend")
        if not run_measured or (kind != "counter" and not measured(agg)):
            results.append(ThresholdResult(threshold, math.nan, threshold.optional, no_data=True))
            continue
        observed = observe(threshold, aggregates, fleet.duration_s)
        results.append(ThresholdResult(threshold, observed, threshold.passes(observed)))
    return results
