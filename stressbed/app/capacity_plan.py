"""Planning a capacity search: the run's plan, the search's declaration, and the workload
whose flow the probes offer. Nothing starts here; every problem is a ConfigError (exit 2)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..backends import registry
from ..backends.base import Capability
from ..errors import ConfigError
from ..results.slo_seconds import RECOVERED_S
from ..scenario import catalog
from ..scenario.capacity import (
    MAX_RATE,
    MIN_STEADY_S,
    Capacity,
    parse_slo,
    slo_label,
    window_judgeable,
)
from ..scenario.flow import mean_requests, think_time_s
from ..scenario.model import Scenario, Workload
from ..scenario.population import Agent
from ..scenario.thresholds import Threshold
from ..scenario.units import format_duration, parse_duration_ms
from ..stack.spec import StackSpec
from .capacity_agents import PopulationSearch, plan_population, population_slos
from .plan import Plan, RunOptions, plan

__all__ = [
    "FIRST_LATENCY_S",
    "PROBE_OVERHEAD_S",
    "SCALE_OUT_FOR",
    "SCALE_OUT_STEP_S",
    "TEARDOWN_RESERVE_S",
    "CapacityOptions",
    "CapacityPlan",
    "latency_bound_s",
    "latency_guess_s",
    "pinned",
    "plan_capacity",
]

#: What a probe costs beyond its step: runners spawned, k6 initialised, the graceful stop,
#: results collected (the first probe's estimate; later ones use the last probe's cost).
PROBE_OVERHEAD_S = 8.0
#: Kept free of probes at the end of the budget, for the teardown.
TEARDOWN_RESERVE_S = 10.0
#: How long the scale-out probe holds the higher rate by default.
SCALE_OUT_FOR = "60s"
#: The scale-out's step from the lower rate to the higher: a ramp this long.
SCALE_OUT_STEP_S = 1.0
#: A request's latency assumed before any probe measured one, with no latency SLO to go by;
#: with one, its bound, and never more than LATENCY_GUESS_CAP_S.
FIRST_LATENCY_S = 0.25
LATENCY_GUESS_CAP_S = 1.0
#: A warm-up shorter than the flow's longest iteration is made this much longer than it: the
#: VUs busy fill up within one iteration, and its latency was only guessed.
WARMUP_MARGIN_S = 1.0


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
    #: "FROM:TO": time the autoscaler under a step from FROM to TO instead of searching.
    scale_out: str | None = None
    #: How long the scale-out probe holds TO (default SCALE_OUT_FOR_S).
    scale_out_for: str | None = None
    #: Search twice: one replica, then max_replicas (the autoscaler pinned each time).
    per_replica: bool = False
    #: False (--no-scale-out): no scale-out after a search on a stack with an autoscaler.
    then_scale_out: bool = True
    #: A population's search: the fewest and the most agents (None: the scenario's, else a
    #: tenth and ten times its declared count).
    min_agents: int | None = None
    max_agents: int | None = None


@dataclass(frozen=True)
class CapacityPlan:
    """A validated search: nothing has started yet."""

    plan: Plan
    capacity: Capacity
    workload: Workload  # whose flow the probes offer
    converted_from: str | None  # the executor of a closed-model workload turned open
    requests_per_iteration: float
    require: int | None = None
    scale_out: tuple[int, int] | None = None  # (FROM, TO): the step, instead of a search
    scale_out_for_s: float = 0.0
    #: With --per-replica: the replicas of the second search (the autoscaler's maximum).
    per_replica: int | None = None
    #: After the search, time the autoscaler from the lowest rate that held to the highest
    #: (the stack has one, and the budget has room for it).
    then_scale_out: bool = False
    #: What the plan decided that the user did not ask for, said before the search starts.
    notes: tuple[str, ...] = ()
    #: The seconds one iteration of the flow pauses (its think time), on average: latency
    #: does not stretch it, so the VU pool grows with it but not its latency headroom.
    think_s: float = 0.0
    #: A search along a population's agent count (its probes run agents, not a rate).
    population: PopulationSearch | None = None

    @property
    def scale_out_cost_s(self) -> float:
        """What the scale-out after a search takes of the budget: its hold, its step, its
        observation and a probe's overhead (0 without one)."""
        if not self.then_scale_out:
            return 0.0
        return self.capacity.step_s + SCALE_OUT_STEP_S + self.scale_out_for_s + PROBE_OVERHEAD_S

    @property
    def unit(self) -> str:
        if self.population is not None:
            return "agents"
        return "req/s" if self.requests_per_iteration == 1 else "iterations/s"

    @property
    def bounds(self) -> tuple[int, int]:
        """The search's lowest and highest value: agents for a population, else rates."""
        capacity = self.capacity
        if self.population is not None:
            assert capacity.min_agents is not None
            assert capacity.max_agents is not None
            return capacity.min_agents, capacity.max_agents
        return capacity.min_rate, capacity.max_rate


def plan_capacity(options: CapacityOptions) -> CapacityPlan:
    """Everything checked before anything exists; ConfigError (exit 2) names the field."""
    if options.run.baseline is not None:
        raise ConfigError("--baseline", str(options.run.baseline), "none with stressbed capacity")
    # Each probe lasts --step-duration: a profile's run duration does not apply.
    options = replace(options, run=replace(options.run, duration=None))
    # The scenario's thresholds become the default SLOs; they are not judged on a whole probe.
    declared = catalog.load_capacity(options.run.scenario) if options.run.scenario else None
    # Before the backend's preflight: a backend that cannot run the probes is refused first.
    backend = registry.create(options.run.backend, options.run.backend_options)
    if Capability.REPEATED_FLEETS not in backend.capabilities:
        raise ConfigError(
            "--backend",
            backend.name,
            "a backend that runs fleet after fleet against one stack (--backend local or "
            "kubernetes)",
        )
    base = plan(options.run)
    scenario = base.scenario
    capacity = declared or Capacity()
    chosen = options.workload if options.workload is not None else capacity.workload
    workload, converted = _workload(scenario, chosen)
    population = isinstance(workload.flow, Agent)
    try:
        if options.slos:
            capacity = replace(capacity, slos=[parse_slo(s) for s in options.slos])
        elif not capacity.slo_thresholds and population:
            capacity = replace(capacity, slos=population_slos(scenario, workload))
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
            min_agents=options.min_agents,
            max_agents=options.max_agents,
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
    if population:
        return _population_plan(options, base, capacity, workload)
    _rates_only(options, capacity)
    assert not isinstance(workload.flow, Agent)
    requests = mean_requests(workload.flow)
    think_s, longest_think_s = think_time_s(workload.flow)
    capacity, warm_note = _warm_up(capacity, workload, requests, longest_think_s)
    step, step_for = _scale_out(options, base, capacity)
    replicas = _per_replica(options, base, capacity)
    then = False
    notes: tuple[str, ...] = warm_note
    if step is None and replicas is None:
        then, step_for, more = _then_scale_out(options, base, capacity)
        notes += more
    return CapacityPlan(
        plan=base,
        capacity=capacity,
        workload=workload,
        converted_from=converted,
        requests_per_iteration=requests,
        require=options.require,
        scale_out=step,
        scale_out_for_s=step_for,
        per_replica=replicas,
        then_scale_out=then,
        notes=notes,
        think_s=think_s,
    )


def _population_plan(
    options: CapacityOptions, base: Plan, capacity: Capacity, workload: Workload
) -> CapacityPlan:
    """A search along the population's agent count (:mod:`.capacity_agents`)."""
    for name, value in (
        ("--scale-out", options.scale_out),
        ("--scale-out-for", options.scale_out_for),
    ):
        if value is not None:
            raise ConfigError(
                name,
                value,
                f"a workload offered at a rate: {workload.name!r} is a population, searched by "
                "its agent count",
            )
    capacity, search = plan_population(
        capacity,
        base.scenario,
        workload,
        runners=base.runners,
        open_files=base.backend.runner_open_files(),
        rates_given=(("--min-rate", options.min_rate), ("--max-rate", options.max_rate)),
    )
    return CapacityPlan(
        plan=base,
        capacity=capacity,
        workload=workload,
        converted_from=None,
        requests_per_iteration=0.0,
        require=options.require,
        per_replica=_per_replica(options, base, capacity),
        population=search,
    )


def _rates_only(options: CapacityOptions, capacity: Capacity) -> None:
    """A rate search refuses what only a population's has: agent bounds and SLOs."""
    for name, value in (
        ("--min-agents", capacity.min_agents),
        ("--max-agents", capacity.max_agents),
    ):
        if value is not None:
            raise ConfigError(
                name,
                value,
                "a population workload (population(...)): this one is offered at a rate",
            )
    for i, slo in enumerate(capacity.slo_thresholds):
        if not window_judgeable(slo):
            raise ConfigError(
                "--slo" if options.slos else f"capacity.slos[{i}]",
                slo_label(slo),
                "an SLO of requests (latency, error_rate): a population's SLOs need a "
                "population workload",
            )


def latency_bound_s(slos: Sequence[Threshold]) -> float | None:
    """The loosest latency SLO's bound, in seconds (None without one)."""
    bounds = [t.value / 1000 for t in slos if t.metric == "http_req_duration"]
    return max(bounds) if bounds else None


def latency_guess_s(slos: Sequence[Threshold]) -> float:
    """One request's latency before any probe measured it: the SLO's bound (what a probe
    that holds may reach), else FIRST_LATENCY_S; capped, so a loose SLO does not make every
    first probe start thousands of VUs."""
    return min(latency_bound_s(slos) or FIRST_LATENCY_S, LATENCY_GUESS_CAP_S)


def _warm_up(
    capacity: Capacity, workload: Workload, requests: float, longest_think_s: float
) -> tuple[Capacity, tuple[str, ...]]:
    """The warm-up at least the flow's longest iteration (its think time at its most and
    its requests at the latency guessed): until one has passed, iterations are only
    starting, none has completed, and the VUs busy are still filling up, which the steady
    window would read as a shortfall and a growing queue."""
    longest = longest_think_s + requests * latency_guess_s(capacity.slo_thresholds)
    if longest <= capacity.warmup_s:
        return capacity, ()
    needed = math.ceil(longest + WARMUP_MARGIN_S)
    why = (
        f"one iteration of workload {workload.name!r} takes up to about {longest:.1f} s "
        f"({longest_think_s:g} s of it think time)"
    )
    if capacity.step_s - needed < MIN_STEADY_S:
        raise ConfigError(
            "--step-duration",
            capacity.step_duration,
            f"at least {format_duration((needed + MIN_STEADY_S) * 1000)}: {why}, so the "
            f"warm-up lasts {needed} s and {MIN_STEADY_S:g} s are judged after it",
        )
    capacity = capacity.with_changes(warmup=format_duration(needed * 1000))
    return capacity, (f"the warm-up is {needed} s: {why}",)


def _then_scale_out(
    options: CapacityOptions, base: Plan, capacity: Capacity
) -> tuple[bool, float, tuple[str, ...]]:
    """Whether a scale-out follows the search: the stack has an autoscaler, --no-scale-out
    was not given, and the budget has room for two probes and it (else a note says so)."""
    spec = base.stack
    autoscaled = spec is not None and spec.autoscaler is not None
    if not options.then_scale_out or not autoscaled:
        if options.scale_out_for is not None:
            raise ConfigError(
                "--scale-out-for",
                options.scale_out_for,
                "only with --scale-out, or a search on a stack with an autoscaler",
            )
        return False, 0.0, ()
    observe_s = _observe_s(options)
    cost = capacity.step_s + SCALE_OUT_STEP_S + observe_s + PROBE_OVERHEAD_S
    needed = 2 * (capacity.step_s + PROBE_OVERHEAD_S) + cost + TEARDOWN_RESERVE_S
    if capacity.budget_s < needed:
        return (
            False,
            0.0,
            (
                f"no scale-out after the search: the budget leaves no room for it (give "
                f"--budget {format_duration(needed * 1000)} or more, or --no-scale-out)",
            ),
        )
    return True, observe_s, ()


def _observe_s(options: CapacityOptions) -> float:
    """--scale-out-for in seconds (checked: long enough to see the SLOs hold again)."""
    observe_ms = parse_duration_ms(options.scale_out_for or SCALE_OUT_FOR, "--scale-out-for")
    if observe_ms < (RECOVERED_S + 5) * 1000:
        raise ConfigError("--scale-out-for", options.scale_out_for, f"at least {RECOVERED_S + 5}s")
    return observe_ms / 1000


def _per_replica(options: CapacityOptions, base: Plan, capacity: Capacity) -> int | None:
    """--per-replica checked: a provisioned stack that has more than one replica to give."""
    if not options.per_replica:
        return None
    if options.scale_out is not None:
        raise ConfigError("--per-replica", True, "not with --scale-out (one or the other)")
    spec = base.stack
    if spec is None:
        raise ConfigError("--per-replica", True, "a provisioned stack, not --target-url")
    most = spec.autoscaler.max_replicas if spec.autoscaler is not None else spec.replicas
    if most < 2:
        raise ConfigError(
            "--per-replica",
            True,
            "a stack of more than one replica (the autoscaler's max_replicas, or replicas)",
        )
    # Each search gets half the budget, and must fit two probes in it.
    needed = 2 * (2 * (capacity.step_s + PROBE_OVERHEAD_S) + TEARDOWN_RESERVE_S)
    if capacity.budget_s < needed:
        raise ConfigError(
            "--budget",
            capacity.budget,
            f"at least {format_duration(needed * 1000)}: two searches of two probes each",
        )
    # Both stacks must pass the quota and the LimitRange as they will be provisioned.
    for count in (1, most):
        pinned(spec, count)
    return most


def pinned(spec: StackSpec, replicas: int) -> StackSpec:
    """``spec`` at a fixed ``replicas``, its autoscaler off (validated: the quota may refuse)."""
    try:
        return replace(spec, replicas=replicas, autoscaler=None).validate()
    except ConfigError as exc:
        raise ConfigError(
            "--per-replica", f"{replicas} replica(s)", f"a stack the spec allows: {exc}"
        ) from None


def _scale_out(
    options: CapacityOptions, base: Plan, capacity: Capacity
) -> tuple[tuple[int, int] | None, float]:
    """--scale-out FROM:TO checked: two rates, a stack with an autoscaler, time for it."""
    if options.scale_out is None:
        return None, 0.0
    text = options.scale_out
    expected = "FROM:TO, two rates (iterations/s) with FROM < TO, e.g. 100:400"
    low_text, _, high_text = text.partition(":")
    try:
        low, high = int(low_text.replace(",", "")), int(high_text.replace(",", ""))
    except ValueError:
        raise ConfigError("--scale-out", text, expected) from None
    if not 1 <= low < high <= MAX_RATE:
        raise ConfigError("--scale-out", text, expected)
    if base.stack is None or base.stack.autoscaler is None:
        raise ConfigError(
            "--scale-out",
            text,
            "a provisioned stack with an autoscaler (stack.autoscaler in the profile), not "
            "--target-url or a stack without one",
        )
    observe_s = _observe_s(options)
    needed = capacity.step_s + observe_s + PROBE_OVERHEAD_S + TEARDOWN_RESERVE_S
    if capacity.budget_s < needed:
        raise ConfigError(
            "--budget",
            capacity.budget,
            f"at least {format_duration(needed * 1000)} for the scale-out probe",
        )
    return (low, high), observe_s


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
    if "arrival-rate" in workload.profile.executor or isinstance(workload.flow, Agent):
        return workload, None  # an open model, or a population searched by its agent count
    if workload.profile.executor in ("per-vu-iterations", "shared-iterations"):
        # A fixed number of iterations is the point of such a workload: no rate to search.
        raise ConfigError(
            f"workloads.{workload.name}",
            workload.profile.executor,
            "an arrival-rate or VU-driven workload: a fixed iteration count cannot be offered "
            "at a rate (a closed model hides the ceiling; capacity searches an open one)",
        )
    return workload, workload.profile.executor
