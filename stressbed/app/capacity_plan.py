"""Planning a capacity search: the run's plan, the search's declaration, and the workload
whose flow the probes offer. Nothing starts here; every problem is a ConfigError (exit 2)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..backends import registry
from ..backends.base import Capability
from ..errors import ConfigError
from ..scenario import catalog
from ..scenario.capacity import Capacity, parse_slo, window_judgeable
from ..scenario.flow import mean_requests
from ..scenario.model import Scenario, Workload
from ..scenario.units import format_duration
from .plan import Plan, RunOptions, plan

__all__ = [
    "PROBE_OVERHEAD_S",
    "TEARDOWN_RESERVE_S",
    "CapacityOptions",
    "CapacityPlan",
    "plan_capacity",
]

#: What a probe costs beyond its step: runners spawned, k6 initialised, the graceful stop,
#: results collected (the first probe's estimate; later ones use the last probe's cost).
PROBE_OVERHEAD_S = 8.0
#: Kept free of probes at the end of the budget, for the teardown.
TEARDOWN_RESERVE_S = 10.0


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
            "a backend that runs fleet after fleet against one stack (--backend local); "
            "a capacity search on a cluster is not supported yet",
        )
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
