"""Judging thresholds on merged fleet data, with k6's semantics.

A trend threshold reads avg/min/max/med/p(N) of the merged sketch; a counter's ``count`` and
``rate`` (per second over the test); a rate metric's share of non-zero samples; a gauge's
value. As in k6, a (sub)metric without samples reads as 0.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from ..scenario.thresholds import BUILTIN_METRICS, Threshold
from .aggregates import Aggregate
from .merge import FleetResult, metric_values

__all__ = ["ThresholdResult", "Verdict", "evaluate", "observe"]


class Verdict(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


@dataclass(frozen=True)
class ThresholdResult:
    threshold: Threshold
    observed: float
    ok: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.threshold.key,
            "expression": self.threshold.expression,
            "label": self.threshold.label,
            "observed": self.observed,
            "ok": self.ok,
            "abort_on_fail": self.threshold.abort_on_fail,
        }


def observe(threshold: Threshold, aggregates: dict[str, Aggregate], duration_s: float) -> float:
    agg = aggregates.get(threshold.key)
    if agg is None:
        agg = Aggregate(BUILTIN_METRICS.get(threshold.metric, "trend"))
    name = threshold.aggregation
    if agg.kind == "trend" and name.startswith("p(") and agg.sketch.count:
        # Just the percentile asked for, which need not be one of the summary's.
        return agg.sketch.quantile(float(name[2:-1]) / 100)
    return float(metric_values(agg, duration_s).get(name, 0.0))


def judge(threshold: Threshold, aggregates: dict[str, Aggregate], duration_s: float) -> bool:
    return threshold.passes(observe(threshold, aggregates, duration_s))


def evaluate(thresholds: Sequence[Threshold], fleet: FleetResult) -> list[ThresholdResult]:
    results = []
    for threshold in thresholds:
        observed = observe(threshold, fleet.aggregates, fleet.duration_s)
        results.append(ThresholdResult(threshold, observed, threshold.passes(observed)))
    return results
