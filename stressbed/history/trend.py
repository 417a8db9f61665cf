"""A series' headline metrics over its runs, their change points, and the history gate.

A series is the runs of one fingerprint (like for like), oldest first. Each metric's values
over them go to :func:`~.changes.change_points`; each change point is told as a regression,
an improvement, or a change (a metric with no worse direction), with the run and build where
the new level starts.

The gate judges the newest run of a series against the ``last`` runs before it (the window),
metric by metric (latency up, errors up, throughput and capacity down are worse). It fails
when either holds:

1. **a regression the newest run belongs to**: the last change point of the window is a
   worsening, and the newest run is nearer its new level than the old (a fixed build, back
   at the old level, passes at once); it started at the first run of the new level;
2. **a step too recent for a change point**: the newest one or two runs (fewer than a change
   point's shortest segment) against the runs of the current level before them: Student's t
   of their mean against that level's prediction interval, ``(m_new - m) / (s * sqrt(1/k +
   1/n))`` with ``n - 1`` degrees of freedom, worse one-sided with p at most
   :data:`RECENT_PVALUE`, each of them by at least the change points' minimum relative
   magnitude (an error rate: by at least
   :data:`MIN_ERROR_RATE_STEP` absolute, its level being near 0). With fewer than
   :data:`MIN_LEVEL_RUNS` runs at the current level, this rule does not judge.

Each failure names the metric, the size of the step, and the build (and run) since which.
"""

from __future__ import annotations

import fnmatch
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .changes import MIN_MAGNITUDE, MIN_SEGMENT, ChangePoint, change_points, t_pvalue
from .entry import Entry

__all__ = [
    "GATED",
    "GATE_FALSE_ALARM_RATE",
    "MIN_ERROR_RATE_STEP",
    "MIN_LEVEL_RUNS",
    "RECENT_PVALUE",
    "Change",
    "GateFailure",
    "MetricTrend",
    "gate",
    "trend",
    "worse_direction",
]

#: The metrics the gate judges unless told others: overall latency, errors, throughput, and
#: a capacity search's answer.
GATED = (
    "http_req_duration p(95)",
    "http_req_duration p(99)",
    "http_req_failed rate",
    "http_reqs rate",
    "capacity max_sustainable_rate",
    "capacity max_sustainable_agents",
)
#: The runs at the current level rule 2 needs before it judges the newest ones.
MIN_LEVEL_RUNS = 5
#: Rule 2's one-sided p-value, at most: the newest runs judged at each gate, on each metric,
#: on a series of noise alone fail it this often (measured: tests/history/test_trend.py).
RECENT_PVALUE = 0.001
#: The share of gates that fail on a series of noise alone (3 % noise, the default metrics),
#: at most: measured 0.6 % to 1.2 % (tests/history/test_trend.py holds it under this).
GATE_FALSE_ALARM_RATE = 0.02
#: An error rate's step, at least, to be a regression (its level is near 0: no share of it).
MIN_ERROR_RATE_STEP = 0.005


def worse_direction(metric: str) -> int:
    """+1 when a rise is worse (latency, errors, recovery times), -1 when a fall is (rates,
    capacity, a connected share), 0 when neither is known."""
    if metric.startswith("http_req_duration") or metric.endswith(("_s", "errors_during_fault")):
        return 1
    if metric in ("http_req_failed rate", "scale_out violation_s"):
        return 1
    if metric.endswith((" rate", "_rate", "_agents", "connected_share", "peak_connected")):
        return -1
    return 0


@dataclass(frozen=True)
class Change:
    """A change point of one metric: where (the run and its build), the levels, and what it
    means for a user (``regression``, ``improvement``, or ``change``)."""

    metric: str
    point: ChangePoint
    run_id: str
    build: str | None
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "run_id": self.run_id,
            "build": self.build,
            "kind": self.kind,
            **self.point.to_dict(),
        }


@dataclass(frozen=True)
class MetricTrend:
    """One metric over a series: each run's value (None: not measured) and its changes."""

    metric: str
    values: tuple[float | None, ...]
    changes: tuple[Change, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "worse": {1: "up", -1: "down"}.get(worse_direction(self.metric)),
            "values": list(self.values),
            "changes": [c.to_dict() for c in self.changes],
        }


def trend(entries: Sequence[Entry], metrics: Sequence[str] = ()) -> list[MetricTrend]:
    """Each metric of ``entries`` (one series, oldest first) with its change points; the
    metrics matching ``metrics`` (shell patterns) or, with none, every metric measured."""
    names = _metrics(entries, metrics)
    found = []
    for metric in names:
        values = tuple(e.figures.get(metric) for e in entries)
        changes = tuple(
            _change(metric, point, entries[point.index]) for point in change_points(values)
        )
        found.append(MetricTrend(metric, values, changes))
    return found


@dataclass(frozen=True)
class GateFailure:
    """Why the gate fails: the metric, since which run (and build), and the step."""

    metric: str
    run_id: str
    build: str | None
    before: float
    after: float
    rule: str  # "change point" or "recent runs"
    pvalue: float
    runs: int = 1  # the runs at the new level, the newest included

    @property
    def relative(self) -> float | None:
        return None if self.before == 0 else (self.after - self.before) / abs(self.before)

    def message(self) -> str:
        step = f"{self.before:.4g} -> {self.after:.4g}"
        if self.relative is not None:
            step += f", {self.relative:+.1%}"
        since = f"build {self.build}" if self.build else "an unknown build"
        where = f"since {since} (run {self.run_id}"
        where += ")" if self.runs == 1 else f", {self.runs} runs)"
        how = "a change point" if self.rule == "change point" else "beyond the range before"
        return f"{self.metric} regressed ({step}) {where}: {how}, p = {self.pvalue:.2g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "run_id": self.run_id,
            "build": self.build,
            "before": self.before,
            "after": self.after,
            "relative": self.relative,
            "rule": self.rule,
            "pvalue": self.pvalue,
            "runs": self.runs,
            "message": self.message(),
        }


@dataclass
class GateAnswer:
    """The gate's answer on a series' newest run: the failures (none: it passes) and what
    it could not judge (a metric not measured)."""

    run_id: str | None
    window: int
    failures: list[GateFailure] = field(default_factory=list)
    judged: list[str] = field(default_factory=list)
    not_judged: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "window": self.window,
            "passed": self.passed,
            "failures": [f.to_dict() for f in self.failures],
            "judged": self.judged,
            "not_judged": self.not_judged,
        }


def gate(entries: Sequence[Entry], last: int, metrics: Sequence[str] = ()) -> GateAnswer:
    """The gate on the newest of ``entries`` (one series, oldest first) against the ``last``
    runs before it (the module's rule), on ``metrics`` (shell patterns; default
    :data:`GATED`, those measured)."""
    window = list(entries[-(last + 1) :])
    newest = window[-1] if window else None
    answer = GateAnswer(newest.run_id if newest else None, len(window) - 1)
    if newest is None:
        return answer
    patterns = tuple(metrics) or GATED
    names = [m for m in _metrics(window, patterns) if worse_direction(m) != 0]
    for metric in names:
        if newest.figures.get(metric) is None:
            answer.not_judged.append(metric)
            continue
        answer.judged.append(metric)
        failure = _judge(metric, window)
        if failure is not None:
            answer.failures.append(failure)
    return answer


def _judge(metric: str, window: Sequence[Entry]) -> GateFailure | None:
    kept = [(e, v) for e in window if (v := e.figures.get(metric)) is not None]
    values = [v for _, v in kept]
    found = _in_regression(metric, values)
    if found is None:
        found = _recent_step(metric, values)
    if found is None:
        return None
    start, before, after, rule, p = found
    entry = kept[start][0]
    return GateFailure(
        metric, entry.run_id, entry.build, before, after, rule, p, runs=len(values) - start
    )


def _in_regression(
    metric: str, values: Sequence[float]
) -> tuple[int, float, float, str, float] | None:
    """Rule 1: the newest run at the new level of a worsening change point."""
    points = change_points(values)
    if not points:
        return None
    last = points[-1]
    if not _worse(metric, last.before, last.after):
        return None

    def nearer_after(v: float) -> bool:
        return abs(v - last.after) < abs(v - last.before)

    if not nearer_after(values[-1]):
        return None  # back at the old level: fixed
    # A new level only two runs old makes a change point a run early (its shortest segment
    # needs three): it starts at the first run that is at it.
    start = last.index
    while start < len(values) - 1 and not nearer_after(values[start]):
        start += 1
    if start == last.index:
        return start, last.before, last.after, "change point", last.pvalue
    level_from = points[-2].index if len(points) > 1 else 0
    before, after = statistics.fmean(values[level_from:start]), statistics.fmean(values[start:])
    return start, before, after, "change point", last.pvalue


def _recent_step(
    metric: str, values: Sequence[float]
) -> tuple[int, float, float, str, float] | None:
    """Rule 2: the newest two runs, then the newest one, against the level before them (from
    the last change point of the runs before them)."""
    worse = worse_direction(metric)
    for k in range(min(2, MIN_SEGMENT - 1), 0, -1):
        before = values[: len(values) - k]
        points = change_points(before)
        level = before[points[-1].index :] if points else before
        recent = values[len(values) - k :]
        if len(level) < MIN_LEVEL_RUNS:
            continue
        p = _beyond(level, recent, worse)
        mean = statistics.fmean(level)
        # Each of the newest runs worse than the level: not one bad run and one good.
        if p <= RECENT_PVALUE and all(_worse(metric, mean, v) for v in recent):
            return len(values) - k, mean, statistics.fmean(recent), "recent runs", p
    return None


def _beyond(level: Sequence[float], recent: Sequence[float], worse: int) -> float:
    """One-sided p-value of ``recent``'s mean being that far the worse way from ``level``'s
    (a prediction interval: the level's spread, its mean's uncertainty and theirs)."""
    n, k = len(level), len(recent)
    mean, sd = statistics.fmean(level), statistics.stdev(level)
    step = (statistics.fmean(recent) - mean) * worse
    if step <= 0:
        return 1.0
    if sd == 0:
        return 0.0
    t = step / (sd * math.sqrt(1 / k + 1 / n))
    return t_pvalue(t, n - 1) / 2


def _worse(metric: str, before: float, after: float) -> bool:
    """Is going from ``before`` to ``after`` worse for ``metric``, by enough to matter?"""
    worse = worse_direction(metric)
    step = (after - before) * worse
    if step <= 0 or worse == 0:
        return False
    if metric == "http_req_failed rate":
        return step >= MIN_ERROR_RATE_STEP
    return before != 0 and step / abs(before) >= MIN_MAGNITUDE


def _change(metric: str, point: ChangePoint, entry: Entry) -> Change:
    if worse_direction(metric) == 0:
        kind = "change"
    elif _worse(metric, point.before, point.after):
        kind = "regression"
    elif _worse(metric, point.after, point.before):
        kind = "improvement"
    else:
        kind = "change"
    return Change(metric, point, entry.run_id, entry.build, kind)


def _metrics(entries: Sequence[Entry], patterns: Sequence[str]) -> list[str]:
    """The metrics measured in ``entries`` (at least once) that match ``patterns`` (all with
    none), in the order first seen."""
    seen: dict[str, None] = {}
    for entry in entries:
        for metric, value in entry.figures.items():
            if value is not None:
                seen.setdefault(metric)
    names = list(seen)
    if not patterns:
        return names
    return [m for m in names if any(fnmatch.fnmatchcase(m, p) for p in patterns)]
