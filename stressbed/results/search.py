"""Where a capacity search probes next, and what its probes add up to.

:class:`Search` is the plan, a pure state machine: exponential bracketing from the lowest rate
(doubling, capped at the highest) until a probe fails, then bisection between the last rate
that held and the first that failed until the bracket is within the resolution, then the two
rates either side of the boundary are probed again. Two trials must agree; when they do not,
the reported interval widens to the rates that did agree rather than picking one. An invalid
probe (the load generator was the limit) ends the search at once.

:func:`conclude` reads the probes: the highest rate that held in every trial below every
failure (``max_sustainable_rate``), the interval the true boundary lies in, the first rate
that failed in every trial and why, what limited the search (``target`` when a rate failed,
else ``generator`` or ``max_rate`` when everything held), the generator's limit when a probe
met it (``generator_limit``, beside a target failure that brackets the capacity: an invalid
probe between the two only keeps the bracket from closing), and the knee (:func:`knee`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .probe import Probe

__all__ = ["Search", "conclude", "knee"]

#: The knee: where p95 first rises faster than the rate (an elasticity above 1).
KNEE_ELASTICITY = 1.0


@dataclass
class Search:
    """The rates to probe, one after the other: ``next()``, run it, ``record()`` it."""

    min_rate: int
    max_rate: int
    resolution: float = 0.05
    confirm: bool = True
    phase: str = "bracketing"  # bracketing, bisecting, confirming, done
    #: Why it ended: converged, max_rate, min_rate, generator, budget, error, interrupted.
    ended_by: str | None = None
    lo: int | None = None  # the highest rate that held
    hi: int | None = None  # the lowest rate that failed
    trials: dict[int, list[str]] = field(default_factory=dict)
    _next: int | None = None
    _pending: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._next = self.min_rate

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def next(self) -> tuple[int, int] | None:
        """The next (rate, trial) to probe, or None when the search is over."""
        if self.done:
            return None
        if self.phase == "confirming":
            rate = self._pending[0]
        else:
            assert self._next is not None
            rate = self._next
        return rate, len(self.trials.get(rate, [])) + 1

    def record(self, rate: int, status: str) -> None:
        """The outcome of the probe at ``rate``: held, failed, invalid or error."""
        self.trials.setdefault(rate, []).append(status)
        if status == "invalid":
            self.stop("generator")
            return
        if status not in ("held", "failed"):
            self.stop("error")
            return
        if self.phase == "confirming":
            self._pending.pop(0)
            if not self._pending:
                self.stop("min_rate" if self.lo is None else "converged")
            return
        if status == "held":
            self.lo = rate if self.lo is None else max(self.lo, rate)
        else:
            self.hi = rate if self.hi is None else min(self.hi, rate)
        if self.phase == "bracketing":
            if status == "held":
                if rate >= self.max_rate:
                    self.stop("max_rate")
                else:
                    self._next = min(2 * rate, self.max_rate)
                return
            if self.lo is None:  # the lowest rate failed: confirm that, and stop
                self._confirm([rate], "min_rate")
                return
            self.phase = "bisecting"
        self._bisect()

    def stop(self, why: str) -> None:
        """End the search (the budget ran out, the run was interrupted, ...)."""
        if self.phase != "done":
            self.phase = "done"
            self.ended_by = why

    def converged(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        return self.hi - self.lo <= max(1.0, self.resolution * self.lo)

    def _bisect(self) -> None:
        assert self.lo is not None
        assert self.hi is not None
        middle = (self.lo + self.hi) // 2
        if self.converged() or middle <= self.lo:
            self._confirm([self.lo, self.hi], "converged")
            return
        self._next = middle

    def _confirm(self, rates: list[int], otherwise: str) -> None:
        if not self.confirm:
            self.stop(otherwise)
            return
        self.phase = "confirming"
        self._pending = list(rates)


def conclude(
    probes: Sequence[Probe], search: Search, cause: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the probes say: capacity.json's answer (everything but ``probes``)."""
    outcomes: dict[int, list[str]] = {}
    for probe in probes:
        if probe.valid:
            outcomes.setdefault(probe.rate, []).append(probe.status)
    held_all = sorted(r for r, s in outcomes.items() if all(x == "held" for x in s))
    failed_any = sorted(r for r, s in outcomes.items() if "failed" in s)
    lowest_failure = failed_any[0] if failed_any else math.inf
    below = [r for r in held_all if r < lowest_failure]
    sustained = below[-1] if below else None
    failed_all = sorted(
        r
        for r, s in outcomes.items()
        if all(x == "failed" for x in s) and (sustained is None or r > sustained)
    )
    first_failing = failed_all[0] if failed_all else None
    disagreed = sorted(r for r, s in outcomes.items() if len(set(s)) > 1)
    ended_by = search.ended_by or "interrupted"
    # A target failure bounds the capacity from above whatever stopped the search after it:
    # a generator limit met below it is said beside it, not instead of it.
    if first_failing is not None or failed_any:
        limited_by = "target"
    elif ended_by == "generator":
        limited_by = "generator"
    elif ended_by == "max_rate":
        limited_by = "max_rate"
    else:
        limited_by = None
    failure = _failure(probes, first_failing)
    return {
        "max_sustainable_rate": sustained,
        "interval": [sustained, first_failing] if sustained is not None else None,
        "at_least": limited_by in ("generator", "max_rate"),
        "first_failing_rate": first_failing,
        "failure": failure,
        "generator_limit": _generator_limit(probes),
        "limited_by": limited_by,
        "ended_by": ended_by,
        "converged": ended_by == "converged",
        "disagreements": disagreed,
        "cause": cause,
        "knee": knee(probes),
    }


def _failure(probes: Sequence[Probe], rate: int | None) -> dict[str, Any] | None:
    """What broke at ``rate``: the first failed probe there, its SLOs and hold conditions."""
    if rate is None:
        return None
    failed = next(p for p in probes if p.rate == rate and p.status == "failed")
    broken = [s for s in failed.slos if not s["ok"]]
    conditions = [k for k, ok in failed.conditions.items() if not ok and not k.startswith("slo:")]
    return {
        "rate": rate,
        "probe": failed.setup.index,
        "slo": broken[0]["slo"] if broken else None,
        "observed": broken[0]["observed"] if broken else None,
        "slos_broken": broken,
        "conditions_failed": conditions,
        "reasons": list(failed.reasons),
    }


def _generator_limit(probes: Sequence[Probe]) -> dict[str, Any] | None:
    """The probe where the load generator was the limit (the search stops at the first),
    what it could not do, and the VUs it needed; None when the generator kept up."""
    invalid = next((p for p in probes if p.status == "invalid"), None)
    if invalid is None:
        return None
    needed = invalid.figure("vus_needed")
    return {
        "rate": invalid.rate,
        "probe": invalid.setup.index,
        "reason": invalid.reasons[0] if invalid.reasons else "the load generator was the limit",
        "runner_cpu_share": invalid.figure("runner_cpu_share"),
        "dropped_share": invalid.figure("dropped_share"),
        "vus_peak": invalid.figure("vus_peak"),
        "max_vus": invalid.setup.max_vus,
        "vus_needed": int(needed) if needed is not None else None,
        "cpu_bound": invalid.conditions.get("runner_cpu") is False,
        # A population's runners out of open files ("too many open files" lines; None for a
        # rate's probes, which do not read them).
        "open_files_errors": invalid.figures.get("runner_open_files_errors"),
    }


def knee(probes: Sequence[Probe]) -> dict[str, Any]:
    """Where p95 starts rising faster than the rate, as a range of tested rates.

    The valid probes' p95 (the median over trials at a rate) is made non-decreasing in the
    rate first (pool-adjacent violators), so one noisy probe does not make a knee. The knee
    is the first pair of neighbouring rates between which the elasticity d ln p95 / d ln
    rate passes 1: latency grows faster than the load. Never a point, and never "the top of
    the range tested": when no pair passes 1, there is no knee in the range, and it says so.
    """
    by_rate: dict[int, list[float]] = {}
    for probe in probes:
        p95 = probe.figure("p95_ms")
        if probe.valid and p95 is not None and p95 > 0:
            by_rate.setdefault(probe.rate, []).append(p95)
    rates = sorted(by_rate)
    if len(rates) < 3:
        return {
            "range": None,
            "confidence": None,
            "reason": f"{len(rates)} rate(s) measured: a knee needs at least 3",
        }
    fitted = _monotone([_median(by_rate[r]) for r in rates])
    for i in range(len(rates) - 1):
        r0, r1, p0, p1 = rates[i], rates[i + 1], fitted[i], fitted[i + 1]
        elasticity = (math.log(p1) - math.log(p0)) / (math.log(r1) - math.log(r0))
        if elasticity > KNEE_ELASTICITY:
            before = i + 1  # rates at or below the knee's start
            if before >= 3 and elasticity >= 2 * KNEE_ELASTICITY:
                confidence = "high"
            elif before >= 2:
                confidence = "medium"
            else:
                confidence = "low"
            return {
                "range": [r0, r1],
                "confidence": confidence,
                "elasticity": elasticity,
                "p95_ms": [p0, p1],
                "reason": f"p95 rose from {p0:,.1f} to {p1:,.1f} ms between {r0:,} and "
                f"{r1:,}/s, faster than the rate",
            }
    return {
        "range": None,
        "confidence": None,
        "reason": f"p95 rose no faster than the rate from {rates[0]:,} to {rates[-1]:,}/s",
    }


def _monotone(values: Sequence[float]) -> list[float]:
    """The closest non-decreasing sequence (least squares): pool adjacent violators."""
    blocks: list[list[float]] = []  # [sum, count]
    for value in values:
        blocks.append([value, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    out: list[float] = []
    for total, count in blocks:
        out.extend([total / count] * int(count))
    return out


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
