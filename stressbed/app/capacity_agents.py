"""Planning a capacity search along a population: how many connected agents the stack holds.

When the workload searched with is a population (an :class:`~stressbed.scenario.population.Agent`
under an :class:`~stressbed.scenario.population.Agents` profile), the search's variable is its
agent count, not a rate: each probe runs the population at ``count`` agents joining over a
short ramp (the declared join, at most a tenth of the step), then holding for the step
(:func:`population_scenario`). Here the bounds, the SLOs and the runners' open files are
checked before anything starts; every problem is a ConfigError (exit 2).

The bounds are ``--min-agents`` and ``--max-agents`` (or the scenario's
``Capacity(min_agents=..., max_agents=...)``), by default a tenth and ten times the declared
count; ``--min-rate`` and ``--max-rate`` are refused (a population offers no rate). The SLOs
are the population's connected share (the declared ``connected(...)``, else ``>= 99%``:
always judged), and the others one probe can judge: its trends and, when its agents make
requests, their latency and error rate. Each agent of a WebSocket channel holds a file of its
runner's: a maximum whose share per runner does not fit under the runner's ``RLIMIT_NOFILE``
(less a reserve for k6's own) is refused, saying how many runners it needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..scenario.capacity import Capacity, population_judgeable, slo_label, window_judgeable
from ..scenario.model import Scenario, Workload
from ..scenario.population import MAX_AGENTS, Agent, Agents, WebSocket
from ..scenario.thresholds import CONNECTED_METRIC, Threshold, connected
from ..scenario.units import format_duration

__all__ = [
    "DEFAULT_CONNECTED",
    "JOIN_SHARE",
    "PopulationSearch",
    "agents_per_runner",
    "files_reserve",
    "per_vu_for",
    "plan_population",
    "population_scenario",
    "population_slos",
]

#: The connected share a probe must hold when the scenario declares none.
DEFAULT_CONNECTED = ">= 99%"
#: A probe's join ramp: the declared join, at most this share of the step.
JOIN_SHARE = 0.1
#: Open files of a runner kept for k6's own (its HTTP connections, logs, the binary's):
#: this share of its limit, at least FILES_RESERVE_MIN.
FILES_RESERVE_SHARE = 0.1
FILES_RESERVE_MIN = 100
#: The search's bounds by default: this share of the declared count, and this many times it.
DEFAULT_LOW_SHARE = 0.1
DEFAULT_HIGH_FACTOR = 10


@dataclass(frozen=True)
class PopulationSearch:
    """What a population's probes need beyond the search's declaration."""

    workload: Workload  # the population, as declared
    join_s: float  # each probe's join ramp
    runners: int
    #: A runner's limit of open files (None: not known before it starts), and how many of
    #: them the most agents take per runner (None without a WebSocket channel).
    open_files: int | None = None
    agents_per_runner_max: int | None = None

    @property
    def profile(self) -> Agents:
        assert isinstance(self.workload.profile, Agents)
        return self.workload.profile

    def to_dict(self) -> dict[str, object]:
        return {
            "workload": self.workload.name,
            "declared_agents": self.profile.count,
            "per_vu": self.profile.per_vu,
            "join_s": self.join_s,
            "runner_open_files": self.open_files,
            "agents_per_runner_max": self.agents_per_runner_max,
        }


def per_vu_for(count: int, runners: int, per_vu: int) -> int:
    """Agents per VU in a probe of ``count``: the declared ``per_vu``, fewer when that would
    leave a runner without a VU (a small count over several runners)."""
    return max(1, min(per_vu, math.ceil(count / runners)))


def agents_per_runner(count: int, runners: int, per_vu: int) -> int:
    """The most agents one runner runs in a probe of ``count`` (whole VUs per runner)."""
    size = per_vu_for(count, runners, per_vu)
    vus = math.ceil(count / size)
    return min(count, math.ceil(vus / runners) * size)


def files_reserve(limit: int) -> int:
    """Open files of a runner kept for k6's own, out of its ``limit``."""
    return max(FILES_RESERVE_MIN, math.ceil(limit * FILES_RESERVE_SHARE))


def population_slos(scenario: Scenario, workload: Workload) -> list[Threshold]:
    """A population's SLOs by default: the scenario's thresholds one probe can judge (the
    population's, and its requests' when its agents make any), the connected share first."""
    assert isinstance(workload.flow, Agent)
    requests = any(True for _ in workload.flow.requests())
    found = [
        t
        for t in scenario.thresholds
        if population_judgeable(t) or (requests and window_judgeable(t))
    ]
    return with_connected(found, scenario)


def with_connected(slos: Sequence[Threshold], scenario: Scenario) -> list[Threshold]:
    """``slos`` with a connected share first: theirs, else the scenario's, else the default."""
    mine = [t for t in slos if t.metric == CONNECTED_METRIC]
    if mine:
        return [*mine, *(t for t in slos if t.metric != CONNECTED_METRIC)]
    declared = [
        t for t in scenario.thresholds if t.metric == CONNECTED_METRIC and population_judgeable(t)
    ]
    first = declared[:1] or [connected(DEFAULT_CONNECTED)]
    return [*first, *slos]


def plan_population(
    capacity: Capacity,
    scenario: Scenario,
    workload: Workload,
    *,
    runners: int,
    open_files: int | None,
    rates_given: Sequence[tuple[str, int | None]] = (),
) -> tuple[Capacity, PopulationSearch]:
    """The search's declaration for a population (its bounds and SLOs resolved, checked) and
    what its probes need; ConfigError (exit 2) naming the field."""
    assert isinstance(workload.flow, Agent)
    assert isinstance(workload.profile, Agents)
    for option, value in rates_given:
        if value is not None:
            raise ConfigError(
                option,
                value,
                f"--{option[2:5]}-agents: workload {workload.name!r} is a population, "
                "searched by its agent count, not a rate",
            )
    profile = workload.profile
    high = capacity.max_agents or min(
        MAX_AGENTS, max(capacity.min_agents or 1, profile.count * DEFAULT_HIGH_FACTOR)
    )
    low = capacity.min_agents or min(high, max(1, math.floor(profile.count * DEFAULT_LOW_SHARE)))
    capacity = capacity.with_changes(
        min_agents=low, max_agents=high, slos=with_connected(capacity.slo_thresholds, scenario)
    )
    requests = any(True for _ in workload.flow.requests())
    for i, slo in enumerate(capacity.slo_thresholds):
        if not population_judgeable(slo) and not (requests and window_judgeable(slo)):
            raise ConfigError(
                f"capacity.slos[{i}]",
                slo_label(slo),
                "an SLO of the population (connected>=99%, checkin_lateness p(99)<2s, ...), or "
                "of requests its agents make (they make none)",
            )
    join_s = min(profile.join_ms / 1000, JOIN_SHARE * capacity.step_s)
    search = PopulationSearch(workload, join_s, runners)
    if isinstance(workload.flow.channel, WebSocket):
        most = agents_per_runner(high, runners, profile.per_vu)
        search = PopulationSearch(workload, join_s, runners, open_files, most)
        if open_files is not None:
            _check_files(high, runners, most, open_files)
    return capacity, search


def _check_files(high: int, runners: int, most: int, limit: int) -> None:
    """Each agent's WebSocket is a file of its runner's: the most agents must fit each
    runner's limit of open files, less the reserve for k6's own."""
    room = limit - files_reserve(limit)
    if most <= room:
        return
    needed = math.ceil(high / room)
    raise ConfigError(
        "--max-agents",
        high,
        f"at most {room * runners:,} agents with {runners} runner(s): each agent holds a "
        f"WebSocket, a file of its runner's, and a runner may open {limit:,} files "
        f"(RLIMIT_NOFILE) of which {files_reserve(limit):,} are kept for k6's own; add "
        f"runners (--runners {needed} or more) for {high:,} agents",
    )


def population_scenario(
    the_scenario: Scenario, search: PopulationSearch, count: int, step_s: float, graceful_s: float
) -> Scenario:
    """The scenario a probe of ``count`` agents runs: the population joining over the probe's
    ramp, then staying for the step, with the scenario's variables, setup and teardown and no
    thresholds (the probe is judged after)."""
    profile = search.profile
    probe = Workload(
        search.workload.name,
        search.workload.flow,
        Agents(
            count,
            lasting=format_duration(step_s * 1000),
            join=format_duration(search.join_s * 1000),
            per_vu=per_vu_for(count, search.runners, profile.per_vu),
        ),
        graceful_stop=format_duration(graceful_s * 1000),
    )
    return the_scenario.with_workloads([probe]).with_thresholds([])
