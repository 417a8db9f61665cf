"""The probes of one capacity search against one provisioned stack.

:class:`Prober` runs what :class:`~stressbed.results.search.Search` asks for: each probe renders
the chosen flow at a constant arrival rate (:func:`probe_scenario`, its VU pool sized by
Little's law from the flow's think time and the latency seen so far: :func:`vu_pool`), runs
the fleet, merges, judges the steady window
(:func:`~stressbed.results.probe.judge_probe`) and writes a run directory of its own under
``probes/``; between probes it waits for the stack to settle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, FleetOutcome, FleetSpec, Progress, Stack
from ..fleet.process import raise_if_interrupted
from ..results.merge import FleetResult, merge
from ..results.probe import Probe, ProbeSetup, judge_probe
from ..results.scaleout import scale_out
from ..results.search import Search
from ..scenario.faults import Fault
from ..scenario.load_profiles import ConstantArrivalRate, RampingArrivalRate
from ..scenario.model import Scenario, Workload
from ..scenario.render import render
from ..scenario.thresholds import Threshold
from ..scenario.units import format_duration
from .capacity_plan import (
    PROBE_OVERHEAD_S,
    SCALE_OUT_STEP_S,
    TEARDOWN_RESERVE_S,
    CapacityPlan,
    latency_bound_s,
    latency_guess_s,
)
from .execute import DEADLINE_MARGIN_S
from .execute import conclude as conclude_run
from .plan import redact
from .rundir import RunDirectory

if TYPE_CHECKING:  # a type only (the live series needs prometheus-client)
    from ..results.live_series import LiveSeries

__all__ = [
    "GRACEFUL_STOP_S",
    "MAX_VUS_PER_RUNNER",
    "Prober",
    "fleet_failure",
    "probe_line",
    "probe_scenario",
    "step_scenario",
    "vu_pool",
]

GRACEFUL_STOP_S = 3.0
#: The VU pool: Little's law L = λW, W the iteration's think time plus its requests' latency
#: with LATENCY_HEADROOM for latency to grow within a probe that holds (and this much for
#: what is started up front); the whole with POOL_HEADROOM, and at most MAX_VUS_PER_RUNNER
#: per runner, so that a slow target cannot make k6 run out of memory.
PREALLOCATED_HEADROOM = 3.0
LATENCY_HEADROOM = 4.0
POOL_HEADROOM = 2.0
MAX_VUS_PER_RUNNER = 2000
#: VUs started up front cover at least this much iteration time: k6 drops iterations while it
#: initialises VUs mid-probe, which a fast target (a 1 ms iteration) would otherwise cause.
MIN_PREALLOCATED_S = 0.02
POLL_S = 0.25


class Prober:
    """The probes of one search against one provisioned stack."""

    def __init__(
        self,
        the_plan: CapacityPlan,
        backend: Backend,
        stack: Stack,
        root: Path,
        env: Mapping[str, str],
        *,
        teardown_s: float = TEARDOWN_RESERVE_S,
        live: LiveSeries | None = None,
    ) -> None:
        self.the_plan = the_plan
        self.teardown_s = teardown_s  # what the budget keeps back for the teardown
        self.live = live  # where each probe's seconds go while it runs (the live page's)
        self.backend = backend
        self.stack = stack
        self.root = root
        self.env = dict(env)
        self.interrupted = False
        self.iteration_s: float | None = None  # the last held probe's mean iteration time
        self.baseline_replicas = _last(stack.report().get("timeseries") or [], "replicas")

    def search(
        self,
        search: Search,
        probes: list[Probe],
        began: float,
        say: Callable[[str], None],
        on_progress: Callable[[Progress], None] | None,
    ) -> tuple[str, int] | None:
        """Probe until the search ends; the failure that ended it, if one did."""
        capacity = self.the_plan.capacity
        cost = capacity.step_s + PROBE_OVERHEAD_S
        contaminated = False
        unit = self.the_plan.unit
        while (chosen := search.next()) is not None:
            raise_if_interrupted()  # one lost while the last probe's fleet stopped, say
            rate, trial = chosen
            # The teardown's time, and the scale-out's when one follows, are kept back.
            kept = self.teardown_s + self.the_plan.scale_out_cost_s
            left = capacity.budget_s - (time.monotonic() - began) - kept
            if left < cost:
                search.stop("budget")
                say(
                    f"the budget is spent ({_clock(max(0.0, left))} left, a probe takes "
                    f"about {_clock(cost)})"
                )
                break
            index = len(probes) + 1
            say(f"probe {index}: {rate:,} {unit}" + (f" (trial {trial})" if trial > 1 else ""))
            started = time.monotonic()
            probe, outcome = self._probe(index, rate, trial, on_progress)
            probe.contaminated = contaminated
            probes.append(probe)
            if outcome.interrupted:
                self.interrupted = True
                return None
            if probe.status == "error":
                reason = "; ".join(probe.reasons) or "the probe failed"
                return f"probe {index} ({rate:,} {unit}): {reason}", outcome.failure_code
            search.record(rate, probe.status)
            say(self.line(probe, search, unit, capacity.budget_s - (time.monotonic() - began)))
            if not search.done:
                contaminated = not self._cool_down(probe)
                if contaminated:
                    say("the stack had not settled when the next probe started: it is flagged")
            cost = time.monotonic() - started
        return None

    def _probe(
        self, index: int, rate: int, trial: int, on_progress: Callable[[Progress], None] | None
    ) -> tuple[Probe, FleetOutcome]:
        the_plan = self.the_plan
        capacity = the_plan.capacity
        pre, pool = self._pool(rate, the_plan.plan.runners)
        scenario = probe_scenario(the_plan, rate, pre, pool)
        path = self.root / "probes" / f"{index:02d}-{rate}"
        run = RunDirectory(
            f"{self.root.name}-probe-{index:02d}", path, render(scenario, path / "bundle")
        )
        setup = ProbeSetup(index, rate, trial, capacity.step_s, capacity.warmup_s, pool, run.run_id)
        outcome, fleet_result = self._fleet(run, capacity.step_s, on_progress)
        probe = judge_probe(
            setup,
            fleet_result.windows,
            outcome.started_at,
            slos=capacity.slo_thresholds,
            runners=outcome.results,
            stack_rows=self.stack.report().get("timeseries") or [],
        )
        why = fleet_failure(outcome)
        if why is not None:
            probe.status = "error"
            probe.reasons.insert(0, why)
        iteration = fleet_result.aggregates.get("iteration_duration")
        if probe.status == "held" and iteration is not None and iteration.sketch.count:
            self.iteration_s = iteration.sketch.mean / 1000
        self._keep(run, scenario, outcome, capacity.step_s, {"probe": probe.to_dict()})
        return probe, outcome

    def line(self, probe: Probe, search: Search, unit: str, left_s: float) -> str:
        """A probe's line, once judged: its verdict, the bracket so far, the budget left."""
        return probe_line(probe, search, unit, left_s)

    def scale_out(
        self,
        low: int,
        high: int,
        say: Callable[[str], None],
        on_progress: Callable[[Progress], None] | None,
    ) -> tuple[dict[str, Any] | None, tuple[str, int] | None]:
        """Hold the lower rate, step to the higher, hold it: the scale-out's timings, or the
        failure that stopped the probe."""
        the_plan = self.the_plan
        hold, observe = the_plan.capacity.step_s, the_plan.scale_out_for_s
        pre, pool = self._pool(high, the_plan.plan.runners)
        scenario = step_scenario(
            the_plan, low, high, hold_s=hold, observe_s=observe, pre=pre, pool=pool
        )
        path = self.root / "scale-out"
        run = RunDirectory(f"{self.root.name}-scale-out", path, render(scenario, path / "bundle"))
        unit = the_plan.unit
        say(f"scale-out: {low:,} {unit} for {_clock(hold)}, then {high:,} for {_clock(observe)}")
        length = hold + SCALE_OUT_STEP_S + observe
        outcome, fleet_result = self._fleet(run, length, on_progress)
        if outcome.interrupted:
            self.interrupted = True
            return None, None
        why = fleet_failure(outcome)
        if why is not None or outcome.started_at is None:
            return None, (
                f"the scale-out probe: {why or 'the fleet never started'}",
                outcome.failure_code,
            )
        step_at = outcome.started_at + hold
        found = scale_out(
            fleet_result.windows,
            step_at,
            step_at + SCALE_OUT_STEP_S + observe,
            the_plan.capacity.slo_thresholds,
            rows=self.stack.report().get("timeseries") or [],
            events=self.stack.events,
        )
        found.update(
            {"from": low, "to": high, "hold_s": hold, "observe_s": observe, "run_id": run.run_id}
        )
        self._keep(run, scenario, outcome, length, {"scale_out": {"from": low, "to": high}})
        return found, None

    def _fleet(
        self, run: RunDirectory, length_s: float, on_progress: Callable[[Progress], None] | None
    ) -> tuple[FleetOutcome, FleetResult]:
        """One fleet run of ``run``'s bundle against the stack, merged."""
        runners = self.the_plan.plan.runners
        spec = FleetSpec(runners=runners, keep_raw=self.the_plan.plan.keep_raw, live=self.live)
        deadline = (length_s + GRACEFUL_STOP_S) * 1.1 + DEADLINE_MARGIN_S
        try:
            fleet = self.backend.fleet(run.bundle.root, run.path, spec, self.env)
            outcome = fleet.run(deadline, on_progress=on_progress, health=self.stack.failure)
        except KeyboardInterrupt:
            outcome = FleetOutcome(results=[], interrupted=True)
        except Exception as exc:  # the fleet's own failure
            outcome = FleetOutcome(results=[], failure=f"the fleet failed: {exc}")
        merged = merge(outcome.results)
        if self.live is not None:  # the probe's seconds no live snapshot brought
            self.live.fill(merged.windows)
        return outcome, merged

    def _keep(
        self,
        run: RunDirectory,
        scenario: Scenario,
        outcome: FleetOutcome,
        length_s: float,
        extra: Mapping[str, Any],
    ) -> None:
        """The probe as a run of its own: summary.json, junit.xml, events (no report.html)."""
        begin = (outcome.started_at or time.time()) - 1
        end = begin + 1 + length_s + GRACEFUL_STOP_S
        report = conclude_run(
            run,
            scenario,
            outcome,
            _Slice(self.stack, begin, end),
            {
                **extra,
                "runners": self.the_plan.plan.runners,
                "target_url": redact(self.stack.url) if self.stack.url else None,
            },
        )
        report.write(run.path, html=False)

    def _pool(self, rate: int, runners: int) -> tuple[int, int]:
        the_plan = self.the_plan
        return vu_pool(
            rate,
            runners,
            think_s=the_plan.think_s,
            requests=the_plan.requests_per_iteration,
            slos=the_plan.capacity.slo_thresholds,
            seen_s=self.iteration_s,
        )

    def settle(self, probes: Sequence[Probe]) -> bool:
        """Before the scale-out after a search: the stack back where it started (the
        replicas, the in-flight requests), waited for as between probes."""
        return self._cool_down(probes[-1]) if probes else self._settled()

    def _cool_down(self, probe: Probe) -> bool:
        """Wait until the replicas are back to their starting count and the target's
        requests in flight back to their level before the search; False if they were not
        within the cool-down."""
        capacity = self.the_plan.capacity
        limit = capacity.cooldown_s
        p99 = probe.figure("p99_ms") or 0.0
        settle = min(limit, max(1.0, 2 * p99 / 1000))  # what the target still has queued
        deadline = time.monotonic() + limit
        time.sleep(settle)
        while True:
            if self._settled():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)

    def _settled(self) -> bool:
        report = self.stack.report()
        rows = report.get("timeseries") or []
        replicas, desired = _last(rows, "replicas"), _last(rows, "desired")
        base = self.baseline_replicas
        if base is not None and (
            (replicas is not None and replicas > base) or (desired is not None and desired > base)
        ):
            return False
        series = ((report.get("target_metrics") or {}).get("series")) or {}
        # Requests in flight, and a population's channels still open at the target.
        for name, points in series.items():
            if ("in_flight" in name or "channel_connected" in name) and points:
                first, last = float(points[0][1]), float(points[-1][1])
                if last > first + max(2.0, 0.5 * first):
                    return False
        return True


def vu_pool(
    rate: int,
    runners: int,
    *,
    think_s: float,
    requests: float,
    slos: Sequence[Threshold],
    seen_s: float | None,
) -> tuple[int, int]:
    """The VUs a probe at ``rate`` starts up front and the most it may use (Little's law).

    An iteration lasts its think time (``think_s``, known from the flow, which no load
    stretches) plus its requests' latency: the mean measured by the last probe that held
    (``seen_s``, less the think time), else the SLO's bound or a guess per request. Only the
    latency gets headroom to grow; a pool sized without the think time runs out on any
    journey that pauses longer than the headroom, which reads as the generator's limit."""
    bound_s = latency_bound_s(slos)
    guessed = requests * latency_guess_s(slos)
    latency = max(seen_s - think_s, 0.0) if seen_s is not None else guessed
    at_bound = requests * bound_s if bound_s is not None else 0.0
    most = think_s + max(latency * LATENCY_HEADROOM, at_bound)
    pool = math.ceil(rate * most * POOL_HEADROOM) + runners
    pool = min(pool, MAX_VUS_PER_RUNNER * runners)
    # Up front, a VU for every iteration in flight while latency stays within the SLO
    # (Little's law at its bound): k6 drops iterations while it initialises VUs
    # mid-probe, which would read as the generator's limit at a rate that may still hold.
    up_front = think_s + max(latency * PREALLOCATED_HEADROOM, at_bound, MIN_PREALLOCATED_S)
    pre = min(pool, math.ceil(rate * up_front) + runners)
    return max(pre, runners), max(pool, runners)


def fleet_failure(outcome: FleetOutcome) -> str | None:
    """Why a probe's fleet run is no measurement: it failed, passed its deadline, or a runner
    broke."""
    broken = [r for r in outcome.results if r.status.failed]
    if outcome.failure:
        return outcome.failure
    if outcome.timed_out:
        return "the probe passed its deadline"
    if broken:
        return f"runner {broken[0].index}: {broken[0].reason or broken[0].status.value}"
    return None


def step_scenario(
    the_plan: CapacityPlan,
    low: int,
    high: int,
    *,
    hold_s: float,
    observe_s: float,
    pre: int,
    pool: int,
) -> Scenario:
    """The scale-out probe: ``low`` iterations/s for ``hold_s``, a SCALE_OUT_STEP_S ramp to
    ``high``, held for ``observe_s``."""
    workload = the_plan.workload
    profile = RampingArrivalRate(
        stages=[
            (format_duration(hold_s * 1000), low),
            (format_duration(SCALE_OUT_STEP_S * 1000), high),
            (format_duration(observe_s * 1000), high),
        ],
        start_rate=low,
        pre_allocated_vus=pre,
        max_vus=pool,
    )
    probe = Workload(
        workload.name, workload.flow, profile, graceful_stop=format_duration(GRACEFUL_STOP_S * 1000)
    )
    return the_plan.plan.scenario.with_workloads([probe]).with_thresholds([])


def probe_scenario(the_plan: CapacityPlan, rate: int, pre: int, pool: int) -> Scenario:
    """The scenario a probe runs: the chosen flow at ``rate`` iterations/s for one step, with
    its variables, setup and teardown, judged by nothing (the steady window is judged after)."""
    workload = the_plan.workload
    step_ms = the_plan.capacity.step_s * 1000
    probe = Workload(
        workload.name,
        workload.flow,
        ConstantArrivalRate(
            rate=rate, duration=format_duration(step_ms), pre_allocated_vus=pre, max_vus=pool
        ),
        graceful_stop=format_duration(GRACEFUL_STOP_S * 1000),
    )
    return the_plan.plan.scenario.with_workloads([probe]).with_thresholds([])


class _Slice:
    """The stack as one probe saw it: its events and samples between ``begin`` and ``end``."""

    def __init__(self, stack: Stack, begin: float, end: float) -> None:
        self._stack, self._begin, self._end = stack, begin, end

    @property
    def url(self) -> str:
        return self._stack.url

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for e in self._stack.events if self._begin <= float(e.get("t", 0)) <= self._end]

    def provision(self) -> str:  # pragma: no cover - a slice is never provisioned
        return self._stack.url

    def teardown(self) -> None:  # pragma: no cover - the search tears the stack down
        return None

    def report(self) -> dict[str, Any]:
        report = dict(self._stack.report())
        rows = report.get("timeseries") or []
        report["timeseries"] = [r for r in rows if self._begin <= float(r.get("t", 0)) <= self._end]
        return report

    def schedule_faults(self, faults: Sequence[Fault], started_at: float) -> None:
        """A probe's slice of the stack applies none (a capacity search has no faults)."""

    def leftovers(self) -> str:  # pragma: no cover
        return self._stack.leftovers()

    def failure(self) -> str | None:
        return self._stack.failure()


def probe_line(probe: Probe, search: Search, unit: str, left_s: float, shown: str = "") -> str:
    """``probe N: RATE UNIT VERDICT (shown): why · so far ≥LO <HI · budget left``; ``shown``:
    its figures (by default the achieved rate and p95)."""
    p95 = probe.figure("p95_ms")
    achieved = probe.figure("achieved_per_s") or 0.0
    if not shown and p95 is not None:
        shown = f"achieved {achieved:,.1f}, p95 {p95:,.1f} ms"
    text = f"probe {probe.setup.index}: {probe.rate:,} {unit} {probe.status}"
    text += f" ({shown})" if shown else ""
    if probe.status != "held" and probe.reasons:
        text += f": {probe.reasons[0]}"
    low = f"≥{search.lo:,}" if search.lo is not None else "?"
    high = f"<{search.hi:,}" if search.hi is not None else ""
    return f"{text} · so far {low} {high} · {_clock(max(0.0, left_s))} of budget left".replace(
        "  ", " "
    )


def _last(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    for row in reversed(rows):
        if isinstance(row.get(key), int | float):
            return float(row[key])
    return None


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
