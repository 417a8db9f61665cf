"""``stressbed capacity``: the highest arrival rate the stack sustains within its SLOs, and what
limits it. An experiment driving plans and fleets:

    plan (the run's plan + the search's declaration) -> provision the stack once
    -> probe after probe, as :class:`~stressbed.results.search.Search` asks:
         render (a ConstantArrivalRate of the scenario's flow) -> run the fleet -> merge
         -> judge the steady window (:mod:`stressbed.results.probe`) -> cool down
    -> conclude (:mod:`stressbed.results.search`, the cause from :mod:`stressbed.results.causes`)
    -> capacity.json, report.html, the table
    finally: teardown

Every probe is a run directory of its own under ``probes/`` (summary.json, junit.xml, each
runner's result). The stack is torn down before :func:`run_capacity` returns, on failure and
interruption too, and capacity.json is written for every search that started.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..backends.base import Backend, FleetOutcome, FleetSpec, Progress, Stack
from ..backends.existing import ExistingService
from ..errors import ConfigError, StressbedError
from ..results.causes import binding_cause
from ..results.merge import merge
from ..results.probe import Probe, ProbeSetup, judge_probe
from ..results.search import Search, conclude
from ..scenario import catalog
from ..scenario.capacity import Capacity, parse_slo, slo_label, window_judgeable
from ..scenario.flow import mean_requests
from ..scenario.load_profiles import ConstantArrivalRate
from ..scenario.model import Scenario, Workload
from ..scenario.render import render
from ..scenario.thresholds import Threshold
from ..scenario.units import format_duration
from .execute import DEADLINE_MARGIN_S, keep_teardown_problem, make_stack, tear_down
from .execute import conclude as conclude_run
from .plan import Plan, RunOptions, plan, redact
from .rundir import RunDirectory, point_latest

__all__ = [
    "CAPACITY_FORMAT",
    "CAPACITY_VERSION",
    "CapacityOptions",
    "CapacityPlan",
    "plan_capacity",
    "run_capacity",
]

CAPACITY_FORMAT = "stressbed.capacity"
CAPACITY_VERSION = 1
#: What a probe costs beyond its step: runners spawned, k6 initialised, the graceful stop,
#: results collected (the first probe's estimate; later ones use the last probe's cost).
PROBE_OVERHEAD_S = 8.0
GRACEFUL_STOP_S = 3.0
#: Kept free of probes at the end of the budget, for the teardown.
TEARDOWN_RESERVE_S = 10.0
#: The VU pool: Little's law L = λW with this headroom for what is started up front, and the
#: most it may grow to (per runner), so that a slow target cannot make k6 run out of memory.
PREALLOCATED_HEADROOM = 3.0
POOL_HEADROOM = 2.0
MAX_VUS_PER_RUNNER = 2000
#: The iteration time assumed before any probe measured one, with no latency SLO to go by.
FIRST_ITERATION_S = 0.25
POLL_S = 0.25


@dataclass(frozen=True)
class CapacityOptions:
    """``stressbed capacity``'s options; None keeps the scenario's Capacity (or its default)."""

    run: RunOptions
    slos: tuple[str, ...] = ()
    min_rate: int | None = None
    max_rate: int | None = None
    step_duration: str | None = None
    warmup: str | None = None
    budget: str | None = None
    cooldown: str | None = None
    resolution: float | None = None
    workload: str | None = None
    confirm: bool | None = None
    #: Exit 1 unless the stack sustains at least this rate.
    require: int | None = None


@dataclass(frozen=True)
class CapacityPlan:
    """A validated search: nothing has started yet."""

    plan: Plan
    capacity: Capacity
    workload: Workload  # whose flow the probes offer
    converted_from: str | None  # the executor of a closed-model workload turned open
    requests_per_iteration: float
    require: int | None = None

    @property
    def unit(self) -> str:
        return "req/s" if self.requests_per_iteration == 1 else "iterations/s"


def plan_capacity(options: CapacityOptions) -> CapacityPlan:
    """Everything checked before anything exists; ConfigError (exit 2) names the field."""
    if options.run.baseline is not None:
        raise ConfigError("--baseline", str(options.run.baseline), "none with stressbed capacity")
    if options.run.duration is not None:
        raise ConfigError(
            "--duration", options.run.duration, "none: --step-duration sets each probe's length"
        )
    # The scenario's thresholds become the default SLOs; they are not judged on a whole probe.
    declared = catalog.load_capacity(options.run.scenario) if options.run.scenario else None
    base = plan(options.run)
    scenario = base.scenario
    capacity = declared or Capacity()
    try:
        if options.slos:
            capacity = replace(capacity, slos=[parse_slo(s) for s in options.slos])
        elif not capacity.slo_thresholds:
            judged = [t for t in scenario.thresholds if window_judgeable(t)]
            if not judged:
                raise ConfigError(
                    "--slo",
                    None,
                    "at least one SLO like 'p(95)<300ms' or 'error_rate<1%' (the scenario's "
                    "thresholds have none a probe's window can judge)",
                )
            capacity = replace(capacity, slos=judged)
        capacity = capacity.with_changes(
            min_rate=options.min_rate,
            max_rate=options.max_rate,
            step_duration=options.step_duration,
            warmup=options.warmup,
            budget=options.budget,
            cooldown=options.cooldown,
            resolution=options.resolution,
            workload=options.workload,
            confirm=options.confirm,
        )
    except TypeError as exc:  # a declaration field of the wrong kind
        raise ConfigError("capacity", str(exc), "a valid Capacity(...)") from None
    needed = 2 * (capacity.step_s + PROBE_OVERHEAD_S) + TEARDOWN_RESERVE_S
    if capacity.budget_s < needed:
        raise ConfigError(
            "--budget",
            capacity.budget,
            f"at least {format_duration(needed * 1000)}: two probes of "
            f"{format_duration(capacity.step_s * 1000)} and their overhead",
        )
    if options.require is not None and (isinstance(options.require, bool) or options.require < 1):
        raise ConfigError("--require", options.require, "a positive rate")
    workload, converted = _workload(scenario, capacity.workload)
    return CapacityPlan(
        plan=base,
        capacity=capacity,
        workload=workload,
        converted_from=converted,
        requests_per_iteration=mean_requests(workload.flow),
        require=options.require,
    )


def _workload(scenario: Scenario, name: str | None) -> tuple[Workload, str | None]:
    """The workload whose flow the probes offer, and the closed-model executor it had."""
    names = [w.name for w in scenario.workloads]
    if name is not None:
        chosen = [w for w in scenario.workloads if w.name == name]
        if not chosen:
            raise ConfigError("--workload", name, "a workload of the scenario: " + ", ".join(names))
        workload = chosen[0]
    else:
        opened = [w for w in scenario.workloads if "arrival-rate" in w.profile.executor]
        candidates = opened or list(scenario.workloads)
        if len(candidates) > 1:
            raise ConfigError(
                "--workload",
                None,
                f"the workload to search with: the scenario has {len(candidates)} ("
                + ", ".join(w.name for w in candidates)
                + ")",
            )
        workload = candidates[0]
    if "arrival-rate" in workload.profile.executor:
        return workload, None
    if workload.profile.executor in ("per-vu-iterations", "shared-iterations"):
        # A fixed number of iterations is the point of such a workload: no rate to search.
        raise ConfigError(
            f"workloads.{workload.name}",
            workload.profile.executor,
            "an arrival-rate or VU-driven workload: a fixed iteration count cannot be offered "
            "at a rate (a closed model hides the ceiling; capacity searches an open one)",
        )
    return workload, workload.profile.executor


# -- the search ---------------------------------------------------------------------------


@dataclass
class CapacityReport:
    """What :func:`run_capacity` returns: capacity.json's document and the exit code."""

    path: Path
    document: dict[str, Any]
    exit_code: int
    report_error: str | None = None
    probes: list[Probe] = field(default_factory=list)


def run_capacity(
    the_plan: CapacityPlan,
    *,
    on_line: Callable[[str], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    backend: Backend | None = None,
) -> CapacityReport:
    """Provision once, probe until the search ends, tear down, write capacity.json."""
    say = on_line or (lambda text: print(f"stressbed: {text}", file=sys.stderr))
    backend = backend or the_plan.plan.backend
    began = time.monotonic()
    root = _new_dir(the_plan.plan.results)
    capacity = the_plan.capacity
    search = Search(capacity.min_rate, capacity.max_rate, capacity.resolution, capacity.confirm)
    probes: list[Probe] = []
    stack, failure, interrupted, teardown_note = _search_on_a_stack(
        the_plan, backend, root, search, probes, began, say, on_progress, on_event
    )
    if interrupted:
        search.stop("interrupted")
    elif failure is not None:
        search.stop("error")
    document = _document(
        the_plan,
        root,
        stack=stack,
        probes=probes,
        search=search,
        failure=failure,
        interrupted=interrupted,
        began=began,
    )
    if teardown_note:
        document["teardown"] = teardown_note
    report = CapacityReport(root / "capacity.json", document, int(document["exit_code"]))
    report.probes = probes
    _write_json(report.path, document)
    try:
        from ..results.html import write_capacity_html  # noqa: PLC0415 - Bokeh, only to draw

        write_capacity_html(root / "report.html", document)
    except Exception as exc:  # a bug in drawing must not cost the search its answer
        report.report_error = f"{type(exc).__name__}: {exc}"
        document["report_error"] = report.report_error
        _write_json(report.path, document)
    return report


def _search_on_a_stack(  # noqa: PLR0917 - the stages' shared state, passed once
    the_plan: CapacityPlan,
    backend: Backend,
    root: Path,
    search: Search,
    probes: list[Probe],
    began: float,
    say: Callable[[str], None],
    on_progress: Callable[[Progress], None] | None,
    on_event: Callable[[dict[str, Any]], None] | None,
) -> tuple[Stack, tuple[str, int] | None, bool, str | None]:
    """Provision, search, tear down whatever happened: (the stack, the failure that ended
    the search, whether it was interrupted, what the teardown could not do)."""
    failure: tuple[str, int] | None = None
    interrupted = False
    stack: Stack = ExistingService("")  # until the backend's stack exists: nothing to remove
    try:
        try:
            holder = RunDirectory(root.name, root, render(the_plan.plan.scenario, root / "bundle"))
            stack, secret_env = make_stack(the_plan.plan, backend, holder, on_event)
            url = stack.provision()
        except StressbedError as exc:
            failure = (f"provisioning failed: {exc}", exc.exit_code)
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:  # an OS error or a bug: still a search that ends with its file
            failure = (f"provisioning failed: {type(exc).__name__}: {exc}", 3)
        else:
            driver = _Driver(the_plan, backend, stack, root, {**secret_env, "TARGET_URL": url})
            try:
                failure = driver.search(search, probes, began, say, on_progress)
            except KeyboardInterrupt:
                interrupted = True
            interrupted = interrupted or driver.interrupted
    finally:
        problem, abandoned = tear_down(stack)
    if problem is None:
        return stack, failure, interrupted, None
    holder_outcome = FleetOutcome(results=[], interrupted=interrupted)
    keep_teardown_problem(holder_outcome, problem, abandoned=abandoned)
    return stack, failure, holder_outcome.interrupted, problem


class _Driver:
    """The probes of one search against one provisioned stack."""

    def __init__(
        self,
        the_plan: CapacityPlan,
        backend: Backend,
        stack: Stack,
        root: Path,
        env: Mapping[str, str],
    ) -> None:
        self.the_plan = the_plan
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
            rate, trial = chosen
            left = capacity.budget_s - (time.monotonic() - began) - TEARDOWN_RESERVE_S
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
            say(_probe_line(probe, search, unit, capacity.budget_s - (time.monotonic() - began)))
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
        runners = the_plan.plan.runners
        pre, pool = self._pool(rate, runners)
        scenario = probe_scenario(the_plan, rate, pre, pool)
        path = self.root / "probes" / f"{index:02d}-{rate}"
        run_id = f"{self.root.name}-probe-{index:02d}"
        run = RunDirectory(run_id, path, render(scenario, path / "bundle"))
        setup = ProbeSetup(index, rate, trial, capacity.step_s, capacity.warmup_s, pool, run.run_id)
        spec = FleetSpec(runners=runners, keep_raw=the_plan.plan.keep_raw)
        deadline = (capacity.step_s + GRACEFUL_STOP_S) * 1.1 + DEADLINE_MARGIN_S
        try:
            fleet = self.backend.fleet(run.bundle.root, run.path, spec, self.env)
            outcome = fleet.run(deadline, on_progress=on_progress, health=self.stack.failure)
        except KeyboardInterrupt:
            outcome = FleetOutcome(results=[], interrupted=True)
        except Exception as exc:  # the fleet's own failure
            outcome = FleetOutcome(results=[], failure=f"the fleet failed: {exc}")
        fleet_result = merge(outcome.results)
        rows = self.stack.report().get("timeseries") or []
        probe = judge_probe(
            setup,
            fleet_result.windows,
            outcome.started_at,
            slos=capacity.slo_thresholds,
            runners=outcome.results,
            stack_rows=rows,
        )
        broken = [r for r in outcome.results if r.status.failed]
        if outcome.failure or outcome.timed_out or broken:
            probe.status = "error"
            why = outcome.failure or ("the probe passed its deadline" if outcome.timed_out else "")
            if not why and broken:
                why = f"runner {broken[0].index}: {broken[0].reason or broken[0].status.value}"
            probe.reasons.insert(0, why)
        iteration = fleet_result.aggregates.get("iteration_duration")
        if probe.status == "held" and iteration is not None and iteration.sketch.count:
            self.iteration_s = iteration.sketch.mean / 1000
        # The probe as a run of its own: summary.json, junit.xml, events (no report.html).
        end = (outcome.started_at or time.time()) + capacity.step_s + GRACEFUL_STOP_S
        begin = (outcome.started_at or time.time()) - 1
        report = conclude_run(
            run,
            scenario,
            outcome,
            _Slice(self.stack, begin, end),
            {
                "probe": probe.to_dict(),
                "runners": runners,
                "target_url": redact(self.stack.url) if self.stack.url else None,
            },
        )
        report.write(run.path, html=False)
        return probe, outcome

    def _pool(self, rate: int, runners: int) -> tuple[int, int]:
        """The VUs started up front and the most the fleet may use (Little's law)."""
        bound_s = _latency_bound_s(self.the_plan.capacity.slo_thresholds)
        seen = self.iteration_s
        expected = seen if seen is not None else min(bound_s or FIRST_ITERATION_S, 1.0)
        most = max(expected * 4, bound_s or 0.0)
        pool = math.ceil(rate * most * POOL_HEADROOM) + runners
        pool = min(pool, MAX_VUS_PER_RUNNER * runners)
        pre = min(pool, math.ceil(rate * expected * PREALLOCATED_HEADROOM) + runners)
        return max(pre, runners), max(pool, runners)

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
        for name, points in series.items():
            if "in_flight" in name and points:
                first, last = float(points[0][1]), float(points[-1][1])
                if last > first + max(2.0, 0.5 * first):
                    return False
        return True


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

    def leftovers(self) -> str:  # pragma: no cover
        return self._stack.leftovers()

    def failure(self) -> str | None:
        return self._stack.failure()


# -- the answer ---------------------------------------------------------------------------


def _document(
    the_plan: CapacityPlan,
    root: Path,
    *,
    stack: Stack,
    probes: Sequence[Probe],
    search: Search,
    failure: tuple[str, int] | None,
    interrupted: bool,
    began: float,
) -> dict[str, Any]:
    report = stack.report()
    limits = {k: float(v) for k, v in (report.get("limits") or {}).items()}
    replicas = report.get("replicas") or {}
    max_replicas = replicas.get("max") if isinstance(replicas, dict) else None
    rows = report.get("timeseries") or []
    answer = conclude(probes, search)
    answer["cause"] = _cause(
        the_plan,
        probes,
        answer=answer,
        stack=stack,
        rows=rows,
        limits=limits,
        max_replicas=max_replicas,
    )
    unit = the_plan.unit
    code, message = _verdict(the_plan, answer, failure, interrupted)
    plan = the_plan.plan
    return {
        "format": CAPACITY_FORMAT,
        "schema_version": CAPACITY_VERSION,
        "run_id": root.name,
        "scenario": plan.scenario.name,
        "workload": the_plan.workload.name,
        "converted_from": the_plan.converted_from,
        "unit": unit,
        "requests_per_iteration": the_plan.requests_per_iteration,
        "exit_code": code,
        "message": message,
        "answer": answer_line(the_plan, answer),
        **answer,
        "slos": [slo_label(t) for t in the_plan.capacity.slo_thresholds],
        "settings": {
            **the_plan.capacity.to_dict(),
            "runners": plan.runners,
            "backend": plan.backend.name if plan.target_url is None else None,
            "target_url": redact(stack.url) if stack.url else None,
            "require": the_plan.require,
            "profile": plan.profile,
        },
        "elapsed_s": round(time.monotonic() - began, 3),
        "stack": {
            "limits": limits,
            "max_replicas": max_replicas,
            "enforcement": report.get("enforcement"),
        },
        "probes": [p.to_dict() for p in probes],
    }


def _cause(
    the_plan: CapacityPlan,
    probes: Sequence[Probe],
    *,
    answer: Mapping[str, Any],
    stack: Stack,
    rows: Sequence[Mapping[str, Any]],
    limits: Mapping[str, float],
    max_replicas: int | None,
) -> dict[str, Any] | None:
    if answer["limited_by"] == "generator":
        invalid = next(p for p in reversed(probes) if p.status == "invalid")
        return {
            "kind": "generator",
            "message": invalid.reasons[0] if invalid.reasons else "the load generator",
            "evidence": {
                "runner_cpu_share": invalid.figure("runner_cpu_share"),
                "dropped_share": invalid.figure("dropped_share"),
                "vus_peak": invalid.figure("vus_peak"),
                "max_vus": invalid.setup.max_vus,
            },
            "also": [],
        }
    rate = answer["first_failing_rate"]
    failed = next((p for p in probes if p.rate == rate and p.status == "failed"), None)
    if failed is None or failed.started_at is None:
        return None
    held = [p for p in probes if p.status == "held"]
    best = max(held, key=lambda p: p.rate) if held else None
    begin, end = failed.started_at, failed.started_at + failed.setup.step_s + GRACEFUL_STOP_S
    events = [e for e in stack.events if begin <= float(e.get("t", 0)) <= end]
    first, last = failed.steady or (begin, end)
    inside = [r for r in rows if first <= float(r.get("t", 0)) <= last + 1]
    return binding_cause(
        failed,
        best,
        events=events,
        rows=inside,
        limits=limits,
        max_replicas=max_replicas,
        has_stack=the_plan.plan.target_url is None,
    )


def _verdict(
    the_plan: CapacityPlan,
    answer: Mapping[str, Any],
    failure: tuple[str, int] | None,
    interrupted: bool,
) -> tuple[int, str]:
    if interrupted:
        return 130, "interrupted; the stack was torn down"
    if failure is not None:
        return failure[1], failure[0]
    sustained = answer["max_sustainable_rate"]
    unit = the_plan.unit
    if sustained is None and answer["limited_by"] == "generator":
        return 3, (
            f"the load generator was the limit from the first probe "
            f"({the_plan.capacity.min_rate:,} {unit}): add runners or give them more CPU"
        )
    if sustained is None:
        if answer["ended_by"] == "budget":
            return 1, "the budget ran out before any probe held"
        return 1, (
            f"no rate held: the stack does not sustain --min-rate "
            f"({the_plan.capacity.min_rate:,} {unit}) within its SLOs"
        )
    if the_plan.require is not None and sustained < the_plan.require:
        return 1, f"sustained {sustained:,} {unit}, under the required {the_plan.require:,}"
    return 0, "the search ended: " + str(answer["ended_by"])


def answer_line(the_plan: CapacityPlan, answer: Mapping[str, Any]) -> str:
    """The one line a person reads first."""
    unit = the_plan.unit
    slos = ", ".join(slo_label(t) for t in the_plan.capacity.slo_thresholds)
    sustained = answer["max_sustainable_rate"]
    if sustained is None and answer["limited_by"] == "generator":
        return (
            f"capacity: not measured: the load generator was the limit at "
            f"{the_plan.capacity.min_rate:,} {unit} (add runners)"
        )
    if sustained is None:
        return f"capacity: below {the_plan.capacity.min_rate:,} {unit} within {slos}"
    if answer["limited_by"] == "generator":
        return (
            f"capacity: at least {sustained:,} {unit} within {slos} (limited by the load "
            "generator: add runners)"
        )
    if answer["limited_by"] == "max_rate":
        return f"capacity: at least {sustained:,} {unit} within {slos} (every probe held)"
    high = answer["first_failing_rate"]
    text = f"capacity: {sustained:,} {unit}"
    if high is not None:
        text += f" ({sustained:,}-{high:,})"
    text += f" within {slos}"
    failure = answer.get("failure")
    if failure:
        broke = (
            f"{failure['slo']} {_shown(failure['observed'], failure['slo'])}"
            if failure.get("slo")
            else (failure["reasons"][0] if failure["reasons"] else "failed")
        )
        text += f"; first failure {failure['rate']:,} {unit}: {broke}"
    cause = answer.get("cause")
    if cause:
        text += f"; cause: {cause['message']}"
    if answer["ended_by"] == "budget":
        text += " (the budget ran out before the bracket closed)"
    return text


def _shown(observed: float | None, slo: str) -> str:
    if observed is None:
        return "no data"
    if "error_rate" in slo:
        return f"{observed:.2%}"
    return f"{observed:,.0f} ms"


def _probe_line(probe: Probe, search: Search, unit: str, left_s: float) -> str:
    p95 = probe.figure("p95_ms")
    achieved = probe.figure("achieved_per_s") or 0.0
    text = f"probe {probe.setup.index}: {probe.rate:,} {unit} {probe.status}"
    text += f" (achieved {achieved:,.1f}, p95 {p95:,.1f} ms)" if p95 is not None else ""
    if probe.status != "held" and probe.reasons:
        text += f": {probe.reasons[0]}"
    low = f"≥{search.lo:,}" if search.lo is not None else "?"
    high = f"<{search.hi:,}" if search.hi is not None else ""
    return f"{text} · so far {low} {high} · {_clock(max(0.0, left_s))} of budget left".replace(
        "  ", " "
    )


def _latency_bound_s(slos: Sequence[Threshold]) -> float | None:
    bounds = [t.value / 1000 for t in slos if t.metric == "http_req_duration"]
    return max(bounds) if bounds else None


def _last(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    for row in reversed(rows):
        if isinstance(row.get(key), int | float):
            return float(row[key])
    return None


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def _new_dir(results: Path) -> Path:
    """results/<id>/ for the search, with results/latest on it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    root = results / f"{stamp}-capacity-{os.urandom(3).hex()}"
    root.mkdir(parents=True)
    point_latest(results, root.name)
    return root


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
