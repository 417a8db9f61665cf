"""One time axis for everything a run measured: what report.html draws and findings read.

:func:`timeline` lays the merged fleet windows, each runner's windows and CPU, the stack's
samples (replicas, each replica's CPU, memory and open connections) and the run's events on
one grid of seconds since the fleet started. A long run is drawn in coarser steps (at most
:data:`MAX_POINTS` points): the windows of a step are merged first and its percentiles read
from the merged sketch, so a coarse point is as exact as a fine one. The full-resolution data
stays in the run directory (each runner's result.json).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..scenario.thresholds import Threshold
from .aggregates import OTHER_NAME, Window
from .population import agent_series, start_second
from .runner_result import RunnerResult
from .sketch import Sketch

__all__ = [
    "MAX_POINTS",
    "REST",
    "TOP_NAMES",
    "Marker",
    "Timeline",
    "breaches",
    "observe_window",
    "runner_lane",
    "timeline",
]

MAX_POINTS = 900
#: Request names charted one by one (the most requested); the others are summed as REST.
TOP_NAMES = 8
REST = "(rest)"  # every request name past the top TOP_NAMES

#: Events drawn as markers on the lanes, with the lane they belong to.
MARKED = {
    "restarted": "stack",
    "crashed": "stack",
    "oom-killed": "stack",
    "liveness-failed": "stack",
    "startup-failed": "stack",
    "unready": "stack",
    "killed": "stack",
    "back-off": "stack",
    "scaled": "stack",
    "quota-denied": "stack",
    "deleted": "stack",
    "controller-failed": "stack",
    "aborted": "fleet",
    "runner-failed": "fleet",
    "stack-failed": "fleet",
    "deadline": "fleet",
    "interrupted": "fleet",
}

Series = list[float | None]


@dataclass(frozen=True)
class Marker:
    """An event on the time axis: where it goes and what its hover says."""

    t: float  # seconds since the start
    kind: str
    lane: str  # "stack" or "fleet"
    text: str


@dataclass
class Timeline:
    """Every series of a run on one grid: point i covers seconds [t[i], t[i] + step)."""

    start: int  # the unix second at t = 0
    step: int  # seconds per point
    t: list[float] = field(default_factory=list)
    covers: list[int] = field(default_factory=list)  # seconds in each point (the last: fewer)
    #: The fleet's merged window of each point.
    buckets: list[Window] = field(default_factory=list)
    #: requests_per_s, failed_per_s, error_rate, p50_ms, p95_ms, p99_ms, vus, vus_max,
    #: iterations_per_s, offered_per_s (iterations started or dropped), dropped_per_s.
    fleet: dict[str, Series] = field(default_factory=dict)
    #: The top request names (and REST): p50_ms, p95_ms, p99_ms, requests_per_s.
    names: dict[str, dict[str, Series]] = field(default_factory=dict)
    statuses: dict[str, Series] = field(default_factory=dict)  # failed requests/s by status
    checks: dict[str, Series] = field(default_factory=dict)  # failed checks/s by check
    runners: list[dict[str, Series]] = field(default_factory=list)  # per runner
    #: replicas, ready, desired (the most in each point); data_free_mib, data_size_mib: the
    #: replicas' data folder's filesystem (the least free in each point), where measured.
    stack: dict[str, Series] = field(default_factory=dict)
    #: Per replica: cpu_m, memory_mib, connections (open through the local balancer).
    pods: dict[str, dict[str, Series]] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)  # a replica's cpu_m, memory_mib
    #: The target's own metrics, summed over its replicas (rates /s, gauges, p95 ms).
    target: dict[str, Series] = field(default_factory=dict)
    #: A population's agents (empty without one): connected, wanted (levels),
    #: connect_attempts_per_s, connects_per_s, connect_failures_per_s, disconnects_per_s.
    agents: dict[str, Series] = field(default_factory=dict)
    agent_failures: dict[str, Series] = field(default_factory=dict)  # failures/s by reason
    markers: list[Marker] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.t) * self.step


def timeline(
    windows: Mapping[int, Window],
    runners: Sequence[RunnerResult] = (),
    stack: Mapping[str, Any] | None = None,
    events: Sequence[Mapping[str, Any]] = (),
    *,
    max_points: int = MAX_POINTS,
    step: int | None = None,
) -> Timeline:
    """The run on one grid, from its merged windows, runner results, stack report and events
    (``step``: seconds per point, to draw a baseline on another run's grid)."""
    stack = stack or {}
    starts = [r.started_at for r in runners if r.started_at and r.windows]
    start = start_second(windows, min(starts) if starts else None)
    last = max(windows, default=start - 1)
    span = last - start + 1
    if step is None:
        step = max(1, math.ceil(span / max_points)) if span > 0 else 1
    points = math.ceil(span / step) if span > 0 else 0
    line = Timeline(start=start, step=step, t=[float(i * step) for i in range(points)])
    # The seconds each point covers: all of its step, but the last may be shorter.
    line.covers = [min(step, span - i * step) for i in range(points)]
    line.buckets = _buckets(windows, start, step, points)
    line.fleet = _fleet(line.buckets, line.covers)
    line.names = _names(line.buckets, line.covers)
    line.statuses = _tallies([b.statuses for b in line.buckets], line.covers)
    line.checks = _tallies([b.checks_failed for b in line.buckets], line.covers)
    line.runners = [_runner(r, start, line.covers) for r in runners]
    _stack(line, stack, points)
    line.target = _target(stack.get("target_metrics") or {}, start, step, points)
    line.agents, line.agent_failures = agent_series(windows, start, step, line.covers)
    line.markers = _markers(events, start, points * step)
    return line


def _index(second: float, start: int, step: int) -> int:
    return int((second - start) // step)


def _buckets(windows: Mapping[int, Window], start: int, step: int, points: int) -> list[Window]:
    buckets = [Window() for _ in range(points)]
    for second, window in windows.items():
        i = _index(second, start, step)
        if 0 <= i < points:
            buckets[i].merge(window)
    if step > 1:  # gauges are summed over runners, not over the seconds of a step
        counts = [0] * points
        for second in windows:
            i = _index(second, start, step)
            if 0 <= i < points:
                counts[i] += 1
        for bucket, seconds in zip(buckets, counts, strict=True):
            if seconds:
                bucket.vus /= seconds
                bucket.vus_max /= seconds
    return buckets


def _quantiles(window_sketch: Sketch) -> tuple[float | None, float | None, float | None]:
    if not window_sketch.count:
        return None, None, None
    p50, p95, p99 = window_sketch.quantiles((0.5, 0.95, 0.99))
    return p50, p95, p99


def _fleet(buckets: Sequence[Window], covers: Sequence[int]) -> dict[str, Series]:
    series: dict[str, Series] = {
        name: []
        for name in (
            *("requests_per_s", "failed_per_s", "error_rate", "p50_ms", "p95_ms", "p99_ms"),
            *("vus", "vus_max", "iterations_per_s", "offered_per_s", "dropped_per_s"),
        )
    }
    for b, step in zip(buckets, covers, strict=True):
        p50, p95, p99 = _quantiles(b.duration)
        values = {
            "requests_per_s": b.requests / step,
            "failed_per_s": b.failed / step,
            "error_rate": b.failed / b.requests if b.requests else None,
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "vus": b.vus,
            "vus_max": b.vus_max,
            "iterations_per_s": b.iterations / step,
            "offered_per_s": (b.iterations + b.dropped) / step,
            "dropped_per_s": b.dropped / step,
        }
        for name, value in values.items():
            series[name].append(value)
    return series


def _names(buckets: Sequence[Window], covers: Sequence[int]) -> dict[str, dict[str, Series]]:
    totals: dict[str, int] = {}
    for b in buckets:
        for name, sketch in b.names.items():
            totals[name] = totals.get(name, 0) + sketch.count
    ranked = sorted(totals, key=lambda n: (-totals[n], n))
    top = [n for n in ranked if n != OTHER_NAME][:TOP_NAMES]
    shown = top + ([REST] if len(ranked) > len(top) else [])
    out: dict[str, dict[str, Series]] = {
        n: {"p50_ms": [], "p95_ms": [], "p99_ms": [], "requests_per_s": []} for n in shown
    }
    for b, step in zip(buckets, covers, strict=True):
        rest = Window()
        for name, sketch in b.names.items():
            if name not in top:
                rest.duration.merge(sketch)
        for name in shown:
            drawn: Sketch | None = rest.duration if name == REST else b.names.get(name)
            count = drawn.count if drawn is not None else 0
            p50, p95, p99 = _quantiles(drawn) if drawn is not None else (None, None, None)
            for key, value in (("p50_ms", p50), ("p95_ms", p95), ("p99_ms", p99)):
                out[name][key].append(value)
            out[name]["requests_per_s"].append(count / step)
    return out


def _tallies(per_bucket: Sequence[Mapping[str, int]], covers: Sequence[int]) -> dict[str, Series]:
    keys = sorted({k for tally in per_bucket for k in tally})
    return {
        k: [tally.get(k, 0) / step for tally, step in zip(per_bucket, covers, strict=True)]
        for k in keys
    }


def _runner(result: RunnerResult, start: int, covers: Sequence[int]) -> dict[str, Series]:
    return runner_lane(
        result.per_second("requests"), result.per_second("dropped"), result.cpu, start, covers
    )


def runner_lane(
    requests_per_second: Iterable[tuple[int, float]],
    dropped_per_second: Iterable[tuple[int, float]],
    cpu_samples: Mapping[int, float],
    start: int,
    covers: Sequence[int],
) -> dict[str, Series]:
    """One runner's lane on the grid: requests/s, dropped iterations/s, k6's cores."""
    points = len(covers)
    step = covers[0] if covers else 1
    requests = [0.0] * points
    dropped = [0.0] * points
    cpu: list[list[float]] = [[] for _ in range(points)]
    for series, pairs in ((requests, requests_per_second), (dropped, dropped_per_second)):
        for second, value in pairs:
            i = _index(second, start, step)
            if 0 <= i < points:
                series[i] += value / covers[i]
    for second, cores in cpu_samples.items():
        # A sample at second s covers the second before it.
        i = _index(second - 1, start, step)
        if 0 <= i < points:
            cpu[i].append(cores)
    return {
        "requests_per_s": list(requests),
        "dropped_per_s": list(dropped),
        "cpu_cores": [sum(c) / len(c) if c else None for c in cpu],
    }


def _stack(line: Timeline, stack: Mapping[str, Any], points: int) -> None:
    rows = stack.get("timeseries") or []
    limits = stack.get("limits") or {}
    line.limits = {k: float(v) for k, v in limits.items() if isinstance(v, int | float)}
    if not rows:
        return
    sums: dict[str, list[list[float]]] = {
        k: [[] for _ in range(points)] for k in (*_COUNTS, *_DISK)
    }
    pods: dict[str, dict[str, list[list[float]]]] = {}
    for row in rows:
        i = _index(float(row.get("t", 0)), line.start, line.step)
        if not 0 <= i < points:
            continue
        for key in (*_COUNTS, *_DISK):
            if isinstance(row.get(key), int | float):
                sums[key][i].append(float(row[key]))
        for name, usage in (row.get("pods") or {}).items():
            lanes = pods.setdefault(name, {k: [[] for _ in range(points)] for k in _USAGE})
            for key in _USAGE:
                if isinstance(usage.get(key), int | float):
                    lanes[key][i].append(float(usage[key]))
    line.stack = {k: [max(v) if v else None for v in sums[k]] for k in _COUNTS}
    if any(sums["data_free_mib"]):  # a point with a reading
        line.stack.update({k: [min(v) if v else None for v in sums[k]] for k in _DISK})
    line.pods = {
        name: {k: [sum(v) / len(v) if v else None for v in lanes[k]] for k in _USAGE}
        for name, lanes in sorted(pods.items())
    }


def _target(metrics: Mapping[str, Any], start: int, step: int, points: int) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for name, pairs in (metrics.get("series") or {}).items():
        sums: list[list[float]] = [[] for _ in range(points)]
        for pair in pairs:
            if not (isinstance(pair, list | tuple) and len(pair) == 2):
                continue
            i = _index(float(pair[0]), start, step)
            if 0 <= i < points and isinstance(pair[1], int | float):
                sums[i].append(float(pair[1]))
        out[str(name)] = [sum(v) / len(v) if v else None for v in sums]
    return out


_COUNTS = ("replicas", "ready", "desired")
_DISK = ("data_free_mib", "data_size_mib")
_USAGE = (
    *("cpu_m", "memory_mib", "connections", "throttled_share", "pids", "pids_refused"),
    *("io_read_mib_s", "io_write_mib_s", "io_read_limit_mib_s", "io_write_limit_mib_s"),
    "cpu_wait",
)


def _markers(events: Sequence[Mapping[str, Any]], start: int, end: float) -> list[Marker]:
    out = []
    for event in events:
        kind = str(event.get("event", ""))
        lane = MARKED.get(kind)
        if lane is None or not isinstance(event.get("t"), int | float):
            continue
        t = float(event["t"]) - start
        if not -1 <= t <= end + 1:
            continue
        out.append(Marker(max(0.0, t), kind, lane, _describe(event)))
    return out


def _describe(event: Mapping[str, Any]) -> str:
    kind = str(event.get("event"))
    who = event.get("replica") or (f"runner {event['runner']}" if "runner" in event else "")
    what = f"scaled {event.get('from')} -> {event.get('to')}" if kind == "scaled" else kind
    detail = event.get("reason") or event.get("probe") or event.get("threshold") or ""
    parts = [what, str(who) if who else "", str(detail)]
    return ": ".join(p for p in (" ".join(x for x in parts[:2] if x), parts[2]) if p)


def breaches(line: Timeline, threshold: Threshold) -> list[tuple[float, float]]:
    """The intervals (seconds since the start) in which ``threshold`` failed on that step's
    data, for the thresholds a step can judge: latency (overall or of one request name), the
    error rate and the request rate. Others give none (judged on the whole run only)."""
    judged: list[bool | None] = []
    for bucket, seconds in zip(line.buckets, line.covers, strict=True):
        observed = observe_window(bucket, threshold, seconds)
        judged.append(None if observed is None else not threshold.passes(observed))
    intervals: list[tuple[float, float]] = []
    for i, failed in enumerate(judged):
        if not failed:
            continue
        t0, t1 = line.t[i], line.t[i] + line.step
        if intervals and intervals[-1][1] == t0:
            intervals[-1] = (intervals[-1][0], t1)
        else:
            intervals.append((t0, t1))
    return intervals


def observe_window(window: Window, threshold: Threshold, seconds: int) -> float | None:
    """``threshold``'s statistic on one window of ``seconds`` (None: nothing to judge):
    latency overall or of one request name (avg, min, max, med, p(N)), the error rate, the
    request rate. What a step of the report, a capacity probe and a scale-out judge."""
    tags = dict(threshold.tags)
    metric, aggregation = threshold.metric, threshold.aggregation
    if metric == "http_req_duration" and set(tags) <= {"name"}:
        sketch = window.names.get(tags["name"]) if "name" in tags else window.duration
        if sketch is None or not sketch.count:
            return None
        if aggregation.startswith("p("):
            return float(sketch.quantile(float(aggregation[2:-1]) / 100))
        return {
            "avg": sketch.mean,
            "min": sketch.minimum,
            "max": sketch.maximum,
            "med": sketch.quantile(0.5),
        }.get(aggregation)
    if tags:
        return None
    if metric == "http_req_failed" and aggregation == "rate" and window.requests:
        return window.failed / window.requests
    if metric == "http_reqs" and aggregation == "rate" and seconds > 0:
        return window.requests / seconds
    return None
