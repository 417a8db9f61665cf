"""One capacity probe judged: held, failed, or invalid (the load generator was the limit).

A probe is one fleet run at a constant arrival rate. :func:`judge_probe` reads its merged
per-second windows from the end of the warm-up to the end of the step (the steady window) and
decides, recording which condition held:

- **invalid** when the generator, not the target, was the limit: a runner's k6 above 90% of
  the CPU it may use for half the window or more, or the VU pool ran out (more than 1% of the
  iterations dropped, or every VU busy) while latency held; it says how many VUs the rate
  needed (``vus_needed``: Little's law on the VUs busy and the iterations they completed).
  The pool is sized from the flow's think time and the latency the previous probe saw
  (Little's law, with headroom), so a pool used up by latency that broke the SLO or kept
  growing is the target's doing: that probe failed;
- **held** when every SLO holds on the steady window alone, the achieved rate is at least 95%
  of the offered rate, and neither latency nor the VUs busy show significant growth
  (:mod:`.trend`);
- **failed** otherwise, with the reasons.

Two concurrencies are figures: ``vus_active``, k6's ``vus`` gauge (VUs running an iteration,
its think time included: the iterations in flight), and ``concurrency_littles_law``, the
requests in flight at the target by Little's law (requests/s completed x their mean latency;
None when no request completed).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..scenario.capacity import slo_label
from ..scenario.thresholds import Threshold
from .aggregates import Window
from .runner_result import RunnerResult
from .timeline import observe_window
from .trend import Slope, slope

__all__ = [
    "ACHIEVED_SHARE",
    "DROPPED_SHARE",
    "RUNNER_CPU_SHARE",
    "Probe",
    "ProbeSetup",
    "judge_probe",
    "runner_cpu",
    "stack_figures",
]

ACHIEVED_SHARE = 0.95
DROPPED_SHARE = 0.01
RUNNER_CPU_SHARE = 0.9
#: A runner counts as CPU-bound when it is above RUNNER_CPU_SHARE for this share of the window.
RUNNER_CPU_SECONDS_SHARE = 0.5
LATENCY_FLOOR_MS = 1.0  # growth smaller than this over a window is not a growing queue
VUS_FLOOR = 2.0  # ... nor this many VUs busy
#: ... nor, with a latency SLO, growth of less than this share of its bound over the window:
#: a queue growing that slowly would take ten windows and more to break the SLO (CPU
#: throttling makes a fast target's latency wander by more than a millisecond or two).
QUEUE_SLO_SHARE = 0.1


@dataclass(frozen=True)
class ProbeSetup:
    """What a probe was asked to do."""

    index: int
    rate: int  # iterations per second, the whole fleet
    trial: int  # 1, or 2 for a confirmation
    step_s: float
    warmup_s: float
    max_vus: int  # the fleet's VU pool
    run_id: str = ""


@dataclass
class Probe:
    """A probe's figures and verdict: one row of capacity.json's ``probes``."""

    setup: ProbeSetup
    status: str  # held, failed, invalid, error
    reasons: list[str] = field(default_factory=list)
    #: Each hold condition and whether it held: slo:<label>, achieved, latency_trend,
    #: vus_active_trend; and the generator's: runner_cpu, vu_pool.
    conditions: dict[str, bool] = field(default_factory=dict)
    slos: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    latency_trend: Slope | None = None
    vus_active_trend: Slope | None = None
    #: The stack had not settled from the probe before (replicas, in-flight) when it started.
    contaminated: bool = False
    started_at: float | None = None
    steady: tuple[int, int] | None = None  # the unix seconds judged, first and last

    @property
    def rate(self) -> int:
        return self.setup.rate

    @property
    def valid(self) -> bool:
        return self.status in ("held", "failed")

    def figure(self, name: str) -> float | None:
        value = self.figures.get(name)
        return float(value) if isinstance(value, int | float) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.setup.index,
            "rate": self.setup.rate,
            "trial": self.setup.trial,
            "run_id": self.setup.run_id,
            "status": self.status,
            "reasons": list(self.reasons),
            "conditions": dict(self.conditions),
            "slos": list(self.slos),
            **{k: _finite(v) for k, v in self.figures.items()},
            "latency_trend": self.latency_trend.to_dict() if self.latency_trend else None,
            "vus_active_trend": self.vus_active_trend.to_dict() if self.vus_active_trend else None,
            "contaminated": self.contaminated,
            "started_at": self.started_at,
            "steady": list(self.steady) if self.steady else None,
            "step_s": self.setup.step_s,
            "warmup_s": self.setup.warmup_s,
            "max_vus": self.setup.max_vus,
        }


def judge_probe(
    setup: ProbeSetup,
    windows: Mapping[int, Window],
    started_at: float | None,
    *,
    slos: Sequence[Threshold],
    runners: Sequence[RunnerResult] = (),
    stack_rows: Sequence[Mapping[str, Any]] = (),
) -> Probe:
    """The verdict on one probe from its merged windows (``started_at``: when the fleet was
    released), its runners' CPU and the stack's samples."""
    if started_at is None:
        return Probe(setup, "error", ["the fleet never started"])
    first = math.ceil(started_at + setup.warmup_s)
    last = math.floor(started_at + setup.step_s) - 1
    seconds = [windows.get(s, Window()) for s in range(first, last + 1)]
    probe = Probe(setup, "failed", started_at=started_at, steady=(first, last))
    if len(seconds) < 2 or not any(w.iterations or w.requests for w in seconds):
        probe.status = "error"
        probe.reasons.append("nothing was measured in the steady window")
        return probe
    steady = Window()
    for w in seconds:
        steady.merge(w)
    n = len(seconds)
    probe.figures = _figures(steady, seconds, setup)
    probe.figures.update(stack_figures(stack_rows, first, last + 1))
    # The generator first: a limit of its own is no verdict on the target.
    cpu_share = runner_cpu(runners, first, last)
    probe.figures["runner_cpu_share"] = cpu_share
    cpu_bound = cpu_share is not None and cpu_share >= RUNNER_CPU_SHARE
    offered = steady.iterations + steady.dropped
    dropped_share = steady.dropped / offered if offered else 0.0
    busiest = max(w.vus for w in seconds)
    pool_out = dropped_share > DROPPED_SHARE or busiest >= setup.max_vus
    probe.conditions["runner_cpu"] = not cpu_bound
    probe.conditions["vu_pool"] = not pool_out
    # Then the hold conditions.
    for threshold in slos:
        observed = observe_window(steady, threshold, n)
        ok = observed is not None and threshold.passes(observed)
        label = slo_label(threshold)
        probe.slos.append({"slo": label, "metric": threshold.key, "observed": observed, "ok": ok})
        probe.conditions[f"slo:{label}"] = ok
        if not ok:
            shown = "no data" if observed is None else _show(threshold, observed)
            probe.reasons.append(f"{label}: {shown}")
    achieved = steady.iterations / n
    probe.conditions["achieved"] = achieved >= ACHIEVED_SHARE * setup.rate
    if not probe.conditions["achieved"]:
        probe.reasons.append(
            f"achieved {achieved:,.1f}/s of {setup.rate:,}/s offered "
            f"({achieved / setup.rate:.0%}, under {ACHIEVED_SHARE:.0%})"
        )
    bounds = [t.value for t in slos if t.metric == "http_req_duration"]
    grows = _trends(probe, seconds, setup.rate, max(bounds) if bounds else None)
    latency_broke = grows or any(
        not s["ok"] and s["metric"].startswith("http_req_duration") for s in probe.slos
    )
    _decide(probe, setup, cpu_bound=cpu_bound, pool_out=pool_out, latency_broke=latency_broke)
    return probe


def _decide(
    probe: Probe, setup: ProbeSetup, *, cpu_bound: bool, pool_out: bool, latency_broke: bool
) -> None:
    """The verdict: the generator's limits first, then every hold condition."""
    cpu_share = probe.figure("runner_cpu_share") or 0.0
    dropped_share = probe.figure("dropped_share") or 0.0
    busiest = probe.figure("vus_peak") or 0.0
    needed = probe.figure("vus_needed")
    if cpu_bound:
        probe.status = "invalid"
        probe.reasons.insert(
            0,
            f"a runner used {cpu_share:.0%} of the CPU it may use: the load generator is the limit",
        )
    elif pool_out and not latency_broke:
        probe.status = "invalid"
        if busiest >= setup.max_vus:
            why = f"all {setup.max_vus:,} VUs busy while latency held: the VU pool was the limit"
            if needed is not None:
                why += f" ({_needs(probe, setup)})"
        else:
            why = (
                f"{dropped_share:.1%} of the iterations dropped with VUs to spare "
                f"({busiest:.0f} of {setup.max_vus:,} busy) while latency held: k6 could not "
                "start them in time (short of CPU, or initialising VUs)"
            )
        probe.reasons.insert(0, why + ": the load generator, not the target, was the limit")
    else:
        held = all(v for k, v in probe.conditions.items() if k not in ("runner_cpu", "vu_pool"))
        probe.status = "held" if held else "failed"
        if pool_out:
            probe.reasons.append(
                f"the {setup.max_vus:,} VUs ran out: latency {probe.figure('mean_ms') or 0:.0f} ms "
                f"at {setup.rate:,}/s needs more in flight than the pool sized for the SLO"
                + (f" ({_needs(probe, setup)})" if needed is not None else "")
            )


def _needs(probe: Probe, setup: ProbeSetup) -> str:
    """How many VUs the offered rate needed, and how that is known."""
    needed = probe.figure("vus_needed") or 0.0
    seconds = probe.figure("iteration_s") or 0.0
    return (
        f"{setup.rate:,}/s at {seconds:.2f} s per iteration needs about {needed:,.0f} VUs "
        f"by Little's law, the pool had {setup.max_vus:,}"
    )


def _trends(probe: Probe, seconds: Sequence[Window], rate: int, bound_ms: float | None) -> bool:
    """Fit latency and the VUs busy over the window; whether latency kept growing. Growth
    counts when it is significant and large enough to matter: against the SLO's latency
    bound when there is one (Little's law carries it to the VUs busy)."""
    latency_floor, vus_floor = LATENCY_FLOOR_MS, VUS_FLOOR
    if bound_ms is not None:
        latency_floor = max(latency_floor, QUEUE_SLO_SHARE * bound_ms)
        vus_floor = max(vus_floor, rate * QUEUE_SLO_SHARE * bound_ms / 1000)
    probe.latency_trend = slope([w.duration.mean if w.duration.count else None for w in seconds])
    probe.vus_active_trend = slope([w.vus for w in seconds])
    grows = probe.latency_trend is not None and probe.latency_trend.growing(latency_floor)
    probe.conditions["latency_trend"] = not grows
    if grows:
        assert probe.latency_trend is not None
        probe.reasons.append(
            f"latency kept growing ({probe.latency_trend.per_s:+.1f} ms/s over the window): a "
            "queue builds up"
        )
    queued = probe.vus_active_trend is not None and probe.vus_active_trend.growing(vus_floor)
    probe.conditions["vus_active_trend"] = not queued
    if queued:
        assert probe.vus_active_trend is not None
        probe.reasons.append(
            f"the VUs busy kept growing ({probe.vus_active_trend.per_s:+.1f}/s): iterations "
            "queue up"
        )
    return grows


def _figures(steady: Window, seconds: Sequence[Window], setup: ProbeSetup) -> dict[str, Any]:
    n = len(seconds)
    sketch = steady.duration
    p50, p95, p99 = sketch.quantiles((0.5, 0.95, 0.99)) if sketch.count else (None,) * 3
    offered = steady.iterations + steady.dropped
    achieved, requests_per_s = steady.iterations / n, steady.requests / n
    vus_active = statistics.fmean(w.vus for w in seconds)
    mean_ms = sketch.mean if sketch.count else None
    # Little's law on the VUs: W = L / λ, the iteration's mean length (think time included),
    # and the VUs the offered rate needs at that length, λ W.
    iteration_s = vus_active / achieved if achieved else None
    return {
        "offered_per_s": float(setup.rate),
        "achieved_per_s": achieved,
        "requests_per_s": requests_per_s,
        "error_rate": steady.failed / steady.requests if steady.requests else None,
        "mean_ms": mean_ms,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "vus_active": vus_active,
        "concurrency_littles_law": (
            requests_per_s * mean_ms / 1000 if mean_ms is not None else None
        ),
        "iteration_s": iteration_s,
        "vus_needed": (math.ceil(setup.rate * iteration_s) if iteration_s is not None else None),
        "vus_peak": max(w.vus for w in seconds),
        "dropped": steady.dropped,
        "dropped_share": steady.dropped / offered if offered else 0.0,
        "statuses": dict(sorted(steady.statuses.items())),
        "seconds": n,
    }


def runner_cpu(runners: Sequence[RunnerResult], first: int, last: int) -> float | None:
    """The busiest runner's typical CPU share over the window: its upper-half value (so a
    runner pinned at its limit for half the window or more reads as pinned)."""
    worst: float | None = None
    for runner in runners:
        if not runner.cpu_capacity:
            continue
        # A CPU sample at second s covers the second before it.
        shares = sorted(
            cores / runner.cpu_capacity
            for second, cores in runner.cpu.items()
            if first + 1 <= second <= last + 1
        )
        if not shares:
            continue
        upper = shares[int(len(shares) * (1 - RUNNER_CPU_SECONDS_SHARE))]
        worst = upper if worst is None else max(worst, upper)
    return worst


def stack_figures(rows: Sequence[Mapping[str, Any]], start: float, end: float) -> dict[str, Any]:
    """Replicas and each replica's CPU (median), memory (peak) and open files (peak, with its
    limit) over the window; the balancer's open files where the stack reports them."""
    inside = [r for r in rows if isinstance(r.get("t"), int | float) and start <= r["t"] < end]
    if not inside:
        return {}
    cpu: dict[str, list[float]] = {}
    memory: dict[str, float] = {}
    throttled: dict[str, float] = {}
    files: dict[str, dict[str, float]] = {}  # each one's open files at their most, and limit
    for row in inside:
        for name, usage in (row.get("pods") or {}).items():
            if isinstance(usage.get("cpu_m"), int | float):
                cpu.setdefault(name, []).append(float(usage["cpu_m"]))
            if isinstance(usage.get("memory_mib"), int | float):
                memory[name] = max(memory.get(name, 0.0), float(usage["memory_mib"]))
            if isinstance(usage.get("throttled_share"), int | float):
                throttled[name] = max(throttled.get(name, 0.0), float(usage["throttled_share"]))
            _files(files, name, usage)
        _files(files, "", row.get("balancer") or {})
    counts = {
        key: [float(r[key]) for r in inside if isinstance(r.get(key), int | float)]
        for key in ("replicas", "ready", "desired")
    }
    pods = {
        name: {
            "cpu_m": statistics.median(cpu[name]) if name in cpu else None,
            "memory_mib": memory.get(name),
            **({"throttled_share": throttled[name]} if name in throttled else {}),
            **files.get(name, {}),
        }
        for name in sorted(set(cpu) | set(memory))
    }
    found: dict[str, Any] = {
        "replicas": max(counts["replicas"]) if counts["replicas"] else None,
        "ready_min": min(counts["ready"]) if counts["ready"] else None,
        "desired_max": max(counts["desired"]) if counts["desired"] else None,
        "pods": pods,
    }
    if "" in files:  # the stack's load balancer (the local backend's)
        found["balancer"] = files[""]
    return found


def _files(found: dict[str, dict[str, float]], name: str, usage: Mapping[str, Any]) -> None:
    """The most files ``name`` held open in a sample so far, and its limit (as last read)."""
    held, limit = usage.get("open_files"), usage.get("nofile_limit")
    if isinstance(held, int | float):
        mine = found.setdefault(name, {})
        mine["open_files"] = max(mine.get("open_files", 0.0), float(held))
    if isinstance(limit, int | float):
        found.setdefault(name, {})["nofile_limit"] = float(limit)


def _show(threshold: Threshold, observed: float) -> str:
    if threshold.metric == "http_req_failed":
        return f"{observed:.2%}"
    return f"{observed:,.1f} ms"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
