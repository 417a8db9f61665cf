"""A population's reconnect storm after a fault: how many agents it cut off, how hard they came
back, what the target refused meanwhile, how long until they were connected again, and
whether the stack itself lived through it.

Read from the merged per-second agent windows (:mod:`stressbed.results.population`'s levels,
exact fleet-wide) and the stack's events, over the fault's *span*: from the second it was
applied until every agent was connected again, or else until the next fault (or the end of the
load). Times are from the instant the fault was applied to the end of the first second whose
level met the mark, after the level had fallen below it; a level that never fell below 99 %
needs no recovery (0 s, ``dipped`` false); a mark never met again in the span is None
("not within the run"), never a number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .aggregates import Window
from .population import levels

__all__ = ["STACK_EVENTS", "storm", "storms"]

#: Disconnects a fault does not cause: an agent leaving by churn, or the population's end.
NOT_THE_FAULT = frozenset({"churn", "end"})
#: What the stack's events say of its own health during a storm, by summary.json's name.
STACK_EVENTS = {
    "crashed": ("crashed",),
    "oom_killed": ("oom-killed",),
    "probe_failures": ("liveness-failed", "startup-failed", "unready"),
    "restarted": ("restarted",),
}


def storms(
    faults: Sequence[Mapping[str, Any]],
    windows: Mapping[int, Window],
    events: Sequence[Mapping[str, Any]],
    end_at: float | None = None,
) -> dict[str, dict[str, Any] | None]:
    """Each applied fault's storm by its name (None: no population was connected before it).
    ``faults``: name, ``at`` and ``end`` in unix time; ``end_at``: when the load ended
    (default: after the last window)."""
    if not any(w.agents is not None for w in windows.values()):
        return {}
    found = levels(windows)
    last = (max(windows) + 1) if end_at is None else end_at
    ordered = sorted(faults, key=lambda f: float(f["at"]))
    out: dict[str, dict[str, Any] | None] = {}
    for i, item in enumerate(ordered):
        until = float(ordered[i + 1]["at"]) if i + 1 < len(ordered) else float(last)
        out[str(item["name"])] = storm(item, windows, found, until, events)
    return out


def storm(
    fault: Mapping[str, Any],
    windows: Mapping[int, Window],
    found: Mapping[int, tuple[int, int]],
    until: float,
    events: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    """One fault's storm (see the module); None when no agent was connected before it."""
    at = float(fault["at"])
    first = int(at)
    before = found.get(first - 1)
    if before is None or before[1] == 0:
        return None
    seconds = [s for s in range(first, max(int(until), first + 1)) if s in found]
    back_99, dipped_99 = _back(found, seconds, at, 0.99)
    back_100, _ = _back(found, seconds, at, 1.0)
    span_end = first + len(seconds)
    if back_100 is not None:
        span_end = min(span_end, int(at + back_100) + 1)
    span = [s for s in seconds if s < span_end]
    disconnects: dict[str, int] = {}
    refused: dict[str, int] = {}
    peak, peak_at, attempts = 0, None, 0
    for second in span:
        agents = windows[second].agents if second in windows else None
        if agents is None:
            continue
        for reason, count in agents.disconnects.items():
            if reason not in NOT_THE_FAULT:
                disconnects[reason] = disconnects.get(reason, 0) + count
        for reason, count in agents.connect_failures.items():
            refused[reason] = refused.get(reason, 0) + count
        attempts += agents.connect_attempts
        if agents.connects > peak:
            peak, peak_at = agents.connects, second
    lowest = min((found[s][1] for s in span), default=before[1])
    return {
        "connected_before": before[1],
        "wanted_before": before[0],
        "disconnected": sum(disconnects.values()),
        "disconnected_by_reason": dict(sorted(disconnects.items())),
        "lowest_connected": lowest,
        "peak_connect_rate": peak,
        "peak_connect_rate_at_s": None if peak_at is None else round(peak_at + 1 - at, 3),
        "connect_attempts": attempts,
        "connect_failures": sum(refused.values()),
        "connect_failures_by_reason": dict(sorted(refused.items())),
        "dipped": dipped_99,
        "time_to_99_connected_s": back_99,
        "time_to_all_connected_s": back_100,
        "observed_s": len(seconds),
        "stack": _stack(events, at, first + len(span)),
    }


def _back(
    found: Mapping[int, tuple[int, int]], seconds: Sequence[int], at: float, share: float
) -> tuple[float | None, bool]:
    """Seconds from ``at`` until the level met ``share`` of the wanted agents again, and
    whether it had fallen below it first (not: 0.0)."""
    fell = False
    for second in seconds:
        wanted, connected = found[second]
        met = wanted > 0 and connected >= share * wanted
        if not met:
            fell = True
        elif fell:
            return round(second + 1 - at, 3), True
    return (None, True) if fell else (0.0, False)


def _stack(events: Sequence[Mapping[str, Any]], at: float, until: float) -> dict[str, Any]:
    """What the stack's events say of it from ``at`` until ``until`` (unix seconds)."""
    counts = dict.fromkeys(STACK_EVENTS, 0)
    for event in events:
        t = float(event.get("t", 0.0))
        if not at <= t < until:
            continue
        for name, kinds in STACK_EVENTS.items():
            if event.get("event") in kinds:
                counts[name] += 1
    return {**counts, "survived": counts["crashed"] == 0 and counts["oom_killed"] == 0}
