"""The isolation verdict of a run with a noisy neighbour: did the neighbour reach the users?

The seconds under the neighbour (from its start to its end, the first and last partial ones
left out) against as many seconds just before it, on the same run, by the comparison's own
statistics (:func:`~.compare.compare`: a moving-block bootstrap over the per-second windows,
each change with its 95 % interval): p95 and p99 latency and the error rate, each against its
tolerance (latency 10 % relative, errors 0.5 percentage points).

``held``: every judged metric unchanged (or better) within its tolerance; ``broken``: one
worsened beyond it (named, with its change and interval); ``inconclusive``: an interval
straddles a tolerance; ``no data``: too few seconds on either side to judge (never a pass).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .aggregates import Window
from .compare import MIN_SECONDS, Tolerances, compare

__all__ = ["JUDGED", "isolation_verdict"]

#: The metrics the verdict judges.
JUDGED = ("http_req_duration p(95)", "http_req_duration p(99)", "http_req_failed rate (%)")


def isolation_verdict(
    windows: Mapping[int, Window],
    at: float,
    end: float | None,
    tolerances: Tolerances | None = None,
) -> dict[str, Any]:
    """The verdict of the neighbour that ran from ``at`` to ``end`` (unix seconds; None: it
    never ended, to the run's last second) on the run's merged ``windows``."""
    first = math.ceil(at)
    last = math.floor(end) if end is not None else max(windows, default=first)
    during = {t: w for t, w in windows.items() if first <= t < last}
    span = max(0, last - first)
    before = {t: w for t, w in windows.items() if first - span <= t < first}
    judged = compare(before, during, tolerances).only(list(JUDGED))
    seconds = {"before": len(before), "during": len(during)}
    if not judged.metrics or min(judged.seconds) < MIN_SECONDS:
        return {
            "verdict": "no data",
            "reason": f"too few seconds of load to compare ({seconds['before']} before, "
            f"{seconds['during']} under the neighbour; {MIN_SECONDS} at least each)",
            "seconds": seconds,
            "metrics": [],
        }
    verdicts = {m.verdict for m in judged.metrics}
    if "regressed" in verdicts:
        verdict = "broken"
    elif "inconclusive" in verdicts:
        verdict = "inconclusive"
    else:
        verdict = "held"
    worst = [m for m in judged.metrics if m.verdict == "regressed"]
    said = "; ".join(f"{m.metric} {m.shown()}" for m in worst)
    return {
        "verdict": verdict,
        "reason": f"the neighbour reached the users: {said}" if worst else None,
        "seconds": seconds,
        "metrics": [m.to_dict() for m in judged.metrics],
    }
