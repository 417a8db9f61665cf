"""What users saw during each fault, and how fast the stack noticed and recovered: read from
the run's merged per-second windows and the stack's events (pure).

For each fault, injected at ``at`` (unix time, as the backend recorded it) and, for one that
lasts, ended at ``end``; observed until the next fault's injection or the end of the load:

- ``baseline``: the BASELINE_S seconds before it that no other fault's observation covers
  (p50, p95, error rate): the steady state it is compared with;
- ``during``: the same figures from injection to the fault's end (an instant fault: the
  RECOVERED_S seconds after it);
- ``time_to_detect_s``: from injection to the first stack event that says the stack noticed
  (a probe failing, the replica killed, crashed or restarted, routed around);
- ``time_to_recover_s``: from injection to the first second from which the rolling
  (ROLLING_S seconds merged) p95 and error rate hold every SLO for RECOVERED_S seconds
  running, each second judged by :mod:`.slo_seconds` (a second with load and nothing
  completed is a violation: stalled); 0 when they never broke; None when that never came
  ("did not recover") or when no second could be judged (``judged_s`` 0: not measured).
  ``time_to_recover_after_end_s`` is the same from the fault's end;
- ``errors_during_fault``: the failed share of the requests from injection until the fault
  is over and the SLOs hold again (or to the end of the observation);
- ``degraded``: the SLO excess summed over the seconds from injection to recovery: p95 above
  its bound (ms x s) and the error rate above its bound (share x s; a stalled second
  answered nothing: fully failed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..scenario.resilience import Resilience
from ..scenario.thresholds import Threshold
from .aggregates import Window
from .slo_seconds import RECOVERED_S, Second, judge_seconds, recovery
from .timeline import observe_window

__all__ = [
    "BASELINE_S",
    "DETECT_EVENTS",
    "judge_resilience",
    "resilience",
]

#: At most this many seconds before a fault make its baseline.
BASELINE_S = 30
#: Stack events that say the stack noticed a fault.
DETECT_EVENTS = (
    "unready",
    "liveness-failed",
    "startup-failed",
    "killed",
    "crashed",
    "oom-killed",
    "restarted",
    "routed-around",
)


def resilience(
    faults: Sequence[Mapping[str, Any]],
    windows: Mapping[int, Window],
    slos: Sequence[Threshold],
    *,
    events: Sequence[Mapping[str, Any]] = (),
    end_at: float | None = None,
    pause_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Each fault's figures (``faults``: name, kind, ``at`` and ``end`` in unix time, the
    ``replicas`` it hit); ``end_at``: when the load ended (default: the last window);
    ``pause_s``: the longest the flow pauses by design (no stall while VUs think)."""
    if not windows:
        return [_unmeasured(f) for f in faults]
    last = max(windows) + 1 if end_at is None else end_at
    ordered = sorted(faults, key=lambda f: float(f["at"]))
    covered: list[tuple[float, float]] = []  # each fault's observation, as it goes
    out: list[dict[str, Any]] = []
    for i, item in enumerate(ordered):
        at = float(item["at"])
        end = float(item["end"]) if item.get("end") is not None else at
        until = float(ordered[i + 1]["at"]) if i + 1 < len(ordered) else float(last)
        seconds = list(range(int(at), int(until)))
        judged = judge_seconds(windows, seconds, slos, since=int(at), pause_s=pause_s)
        recovered = recovery(judged)
        stop = int(at) + (recovered if recovered is not None else len(seconds))
        base = [
            s
            for s in range(int(at) - BASELINE_S, int(at))
            if not any(lo <= s < hi for lo, hi in covered)
        ]
        covered.append((int(at), stop))
        lasting = end - at
        during_to = int(end) if lasting >= 1 else int(at) + RECOVERED_S
        # What users met from injection until the fault was over and the SLOs held again.
        affected = _sum(windows, range(int(at), max(stop, during_to, int(at) + 1)))
        after_end = None
        if recovered is not None:
            after_end = max(0.0, int(at) + recovered - end) if lasting else None
        out.append(
            {
                **item,  # what the caller knows of it (its label, how it was applied, ...)
                "name": item.get("name"),
                "kind": item.get("kind"),
                "at": at,
                "end": item.get("end"),
                "replicas": list(item.get("replicas") or []),
                "baseline": _figures(_sum(windows, base)),
                "during": _figures(_sum(windows, range(int(at), max(during_to, int(at) + 1)))),
                "time_to_detect_s": _detected(item, events, at, until),
                "time_to_recover_s": float(recovered) if recovered is not None else None,
                "time_to_recover_after_end_s": after_end,
                "recovered": recovered is not None,
                "errors_during_fault": (
                    affected.failed / affected.requests if affected.requests else None
                ),
                "failed_requests": affected.failed,
                "requests": affected.requests,
                "degraded": _degraded(windows, seconds[: stop - int(at)], judged, slos),
                "observed_s": len(seconds),
                # Without an SLO no second is judged held: a stall alone is no recovery
                # missed, and the recovery is not measured (a population's is its storm's).
                "judged_s": sum(j is not None for j in judged) if slos else 0,
                "stalled_s": sum(j is Second.STALLED for j in judged),
                "lost_writes": item.get("lost_writes"),
                **_unjudged(judged if slos else []),
            }
        )
    return out


def judge_resilience(
    found: Sequence[Mapping[str, Any]], thresholds: Sequence[Resilience]
) -> list[dict[str, Any]]:
    """Every resilience threshold on every fault: passed, with what was observed (and, when
    nothing was, a ``note`` saying why: a fault that did not recover is no missing datum)."""
    verdicts = []
    for threshold in thresholds:
        for fault in found:
            observed = fault.get(_MEASURE[threshold.metric])
            verdict = {
                "threshold": threshold.label,
                "fault": fault.get("name"),
                "observed": observed,
                "passed": threshold.holds(observed),
            }
            if observed is None:
                verdict["note"] = _unobserved(threshold.metric, fault)
            verdicts.append(verdict)
    return verdicts


def _unobserved(metric: str, fault: Mapping[str, Any]) -> str:
    if fault.get("applied") is False:
        return "not applied"
    if metric == "recovery_time" and fault.get("judged_s"):
        return "did not recover"
    if metric == "time_to_detect" and "observed_s" in fault:  # watched, and no event came
        return "not detected"
    return "not measured"


_MEASURE = {
    "recovery_time": "time_to_recover_s",
    "time_to_detect": "time_to_detect_s",
    "lost_writes": "lost_writes",
    "errors_during_fault": "errors_during_fault",
}


def _unmeasured(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **item,  # what the caller knows of it (its label, how it was applied, ...)
        "name": item.get("name"),
        "kind": item.get("kind"),
        "at": item.get("at"),
        "end": item.get("end"),
        "recovered": False,
        "time_to_detect_s": None,
        "time_to_recover_s": None,
        "errors_during_fault": None,
        "lost_writes": item.get("lost_writes"),
        "judged_s": 0,
        "note": "nothing was measured",
    }


def _unjudged(judged: Sequence[Second | None]) -> dict[str, str]:
    """A note when no second could be judged: its recovery was not measured, not missed."""
    if any(j is not None for j in judged):
        return {}
    return {"note": "recovery not measured: no second could be judged against the SLOs"}


def _detected(
    item: Mapping[str, Any], events: Sequence[Mapping[str, Any]], at: float, until: float
) -> float | None:
    hit = set(item.get("replicas") or [])
    for event in sorted(events, key=lambda e: float(e.get("t", 0))):
        t = float(event.get("t", 0))
        if not at <= t < until or event.get("event") not in DETECT_EVENTS:
            continue
        if "teardown" in str(event.get("reason", "")) or event.get("after") == "teardown":
            continue  # the run's own end, not the stack noticing
        if hit and event.get("replica") not in hit:
            continue
        return round(t - at, 3)
    return None


def _sum(windows: Mapping[int, Window], seconds: Sequence[int] | range) -> Window:
    total = Window()
    for s in seconds:
        if s in windows:
            total.merge(windows[s])
    return total


def _figures(window: Window) -> dict[str, Any]:
    sketch = window.duration
    return {
        "requests": window.requests,
        "p50_ms": sketch.quantile(0.5) if sketch.count else None,
        "p95_ms": sketch.quantile(0.95) if sketch.count else None,
        "error_rate": window.failed / window.requests if window.requests else None,
    }


def _degraded(
    windows: Mapping[int, Window],
    seconds: Sequence[int],
    judged: Sequence[Second | None],
    slos: Sequence[Threshold],
) -> dict[str, float]:
    """Each SLO's excess over its bound, summed over ``seconds`` (a stalled second counts as
    fully failed for the error rate: nothing was answered while users waited; a second not
    measured adds nothing)."""
    out: dict[str, float] = {}
    for threshold in slos:
        if threshold.operator not in ("<", "<="):
            continue
        excess = 0.0
        for s, state in zip(seconds, judged, strict=False):
            if state is Second.STALLED:
                if threshold.metric == "http_req_failed":
                    excess += 1.0 - threshold.value
                continue
            window = windows.get(s)
            if window is None or not window.requests:
                continue
            observed = observe_window(window, threshold, 1)
            if observed is not None and observed > threshold.value:
                excess += observed - threshold.value
        out[threshold.key + ":" + threshold.expression] = round(excess, 3)
    return out
