"""How fast the stack scales out under a step in load, and what users see meanwhile.

A scale-out probe holds one rate, steps to a higher one, and holds that. :func:`scale_out`
reads the run's merged per-second windows and the stack's samples and events, and times,
from the step (t = 0):

- ``t_desired_s``: the autoscaler's first decision to scale up (its ``scaled`` event);
- ``t_ready_s``: every replica it asked for ready (the first sample after that decision with
  as many ready replicas as desired);
- ``t_recovered_s``: the SLOs held again, each second judged alone by
  :mod:`.slo_seconds`, for RECOVERED_S seconds running (0 when the step never broke them;
  None when they never held that long again, or when no second could be judged);
- ``violation_s``: the seconds after the step in which an SLO failed or the load stalled
  (load running, nothing completed), up to the recovery (or to the end, when it never
  came); ``stalled_s`` those of them that stalled; ``judged_s`` the seconds judged at all.

Each second is judged alone, not on a rolling window: the timings are read beside the
autoscaler's, to the second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..scenario.capacity import slo_label
from ..scenario.thresholds import Threshold
from .aggregates import Window
from .slo_seconds import Second, judge_seconds, recovery

__all__ = ["scale_out"]


def scale_out(
    windows: Mapping[int, Window],
    step_at: float,
    end_at: float,
    slos: Sequence[Threshold],
    *,
    rows: Sequence[Mapping[str, Any]] = (),
    events: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The timings of a step at unix time ``step_at`` whose probe ended at ``end_at``."""
    first, last = int(step_at), int(end_at) - 1
    seconds = list(range(first, last + 1))
    judged = judge_seconds(windows, seconds, slos, since=first, rolling_s=1)
    recovered = recovery(judged)
    violated_until = len(judged) if recovered is None else recovered
    violation = sum(1 for j in judged[:violated_until] if j is not None and j.violated)
    stalled = sum(1 for j in judged[:violated_until] if j is Second.STALLED)
    ups = [
        e
        for e in events
        if e.get("event") == "scaled"
        and isinstance(e.get("t"), int | float)
        and float(e["t"]) >= step_at
        and _int(e.get("to")) > _int(e.get("from"))
    ]
    before = [
        e
        for e in events
        if e.get("event") == "scaled"
        and isinstance(e.get("t"), int | float)
        and float(e["t"]) < step_at
        and _int(e.get("to")) > _int(e.get("from"))
    ]
    t_desired = float(ups[0]["t"]) - step_at if ups else None
    t_ready = _ready(rows, float(ups[0]["t"])) if ups else None
    start_rows = [r for r in rows if _at(r) is not None and float(r["t"]) < step_at]
    start = _int(start_rows[-1].get("replicas")) if start_rows else None
    after = [r for r in rows if _at(r) is not None and step_at <= float(r["t"]) <= end_at]
    peak = max((_int(r.get("replicas")) for r in after), default=None)
    return {
        "t_desired_s": t_desired,
        "t_ready_s": None if t_ready is None else t_ready - step_at,
        "t_recovered_s": None if recovered is None else float(recovered),
        "violation_s": violation,
        "stalled_s": stalled,
        "judged_s": sum(j is not None for j in judged),
        "recovered": recovered is not None,
        "replicas": {"start": start, "peak": peak},
        "scaled_before_the_step": len(before),
        "decisions": [
            {"t_s": float(e["t"]) - step_at, "from": e.get("from"), "to": e.get("to")} for e in ups
        ],
        "slos": [slo_label(t) for t in slos],
        "series": _series(windows, rows, step_at, end_at, slos),
    }


def _ready(rows: Sequence[Mapping[str, Any]], decided_at: float) -> float | None:
    """When, after the decision, as many replicas were ready as desired (more than before)."""
    for row in rows:
        at = _at(row)
        if at is None or at < decided_at:
            continue
        ready, desired = _int(row.get("ready")), _int(row.get("desired"))
        if desired and ready >= desired:
            return at
    return None


def _series(
    windows: Mapping[int, Window],
    rows: Sequence[Mapping[str, Any]],
    step_at: float,
    end_at: float,
    slos: Sequence[Threshold],
) -> dict[str, Any]:
    """Per second, from the probe's first window: p95, the error rate, replicas and ready,
    each at seconds since the step (what the report draws)."""
    out: dict[str, list[Any]] = {"t": [], "p95_ms": [], "error_rate": [], "ok": []}
    seconds = sorted(s for s in windows if s <= end_at)
    judged = judge_seconds(windows, seconds, slos, since=min(seconds, default=0), rolling_s=1)
    for second, state in zip(seconds, judged, strict=True):
        window = windows[second]
        sketch = window.duration
        out["t"].append(second - step_at)
        out["p95_ms"].append(sketch.quantile(0.95) if sketch.count else None)
        out["error_rate"].append(window.failed / window.requests if window.requests else None)
        out["ok"].append(None if state is None else not state.violated)
    stack: dict[str, list[Any]] = {"t": [], "replicas": [], "ready": [], "desired": []}
    first = min(windows, default=int(step_at))
    for row in rows:
        at = _at(row)
        if at is None or not first <= at <= end_at:
            continue
        stack["t"].append(at - step_at)
        for key in ("replicas", "ready", "desired"):
            stack[key].append(row.get(key))
    return {**out, "stack": stack}


def _at(row: Mapping[str, Any]) -> float | None:
    value = row.get("t")
    return float(value) if isinstance(value, int | float) else None


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
