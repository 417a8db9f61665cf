"""The probes of a capacity search along a population: agents, not a rate.

:class:`PopulationProber` is a :class:`~stressbed.app.probing.Prober` whose probe runs the
population at the count the search asks for (:func:`~.capacity_agents.population_scenario`),
reads how often k6 ran out of open files (each runner's k6.log, or its stderr's last lines),
and judges the probe (:func:`~stressbed.results.population_probe.judge_population`). The
search, the cool-down between probes and the run directories are the rate search's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..backends.base import FleetOutcome, Progress
from ..results.population_probe import OPEN_FILES_ERROR, judge_population, open_files_errors
from ..results.probe import Probe, ProbeSetup
from ..results.search import Search
from ..scenario.render import render
from .capacity_agents import population_scenario
from .probing import GRACEFUL_STOP_S, Prober, fleet_failure, probe_line
from .rundir import RunDirectory

__all__ = ["CLOSE_S", "PopulationProber"]

#: After the step the agents close their channels (the runtime waits at most 5 s for them).
CLOSE_S = 5.0
#: Read at most this much of a runner's k6.log (its end) for "too many open files".
LOG_BYTES = 8 * 2**20


class PopulationProber(Prober):
    """The probes of a search along a population's agent count."""

    def _probe(
        self, index: int, rate: int, trial: int, on_progress: Callable[[Progress], None] | None
    ) -> tuple[Probe, FleetOutcome]:
        the_plan = self.the_plan
        capacity, search = the_plan.capacity, the_plan.population
        assert search is not None
        scenario = population_scenario(
            the_plan.plan.scenario, search, rate, capacity.step_s, GRACEFUL_STOP_S
        )
        path = self.root / "probes" / f"{index:02d}-{rate}"
        run = RunDirectory(
            f"{self.root.name}-probe-{index:02d}", path, render(scenario, path / "bundle")
        )
        vus = scenario.peak_vus()
        setup = ProbeSetup(index, rate, trial, capacity.step_s, capacity.warmup_s, vus, run.run_id)
        length = search.join_s + capacity.step_s + CLOSE_S
        outcome, fleet_result = self._fleet(run, length, on_progress)
        probe = judge_population(
            setup,
            fleet_result.windows,
            outcome.started_at,
            join_s=search.join_s,
            slos=capacity.slo_thresholds,
            runners=outcome.results,
            stack_rows=self.stack.report().get("timeseries") or [],
            open_files=open_files_errors(outcome.results, _k6_logs(path)),
        )
        why = fleet_failure(outcome)
        if why is not None:
            probe.status = "error"
            probe.reasons.insert(0, why)
        self._keep(run, scenario, outcome, length, {"probe": probe.to_dict()})
        return probe, outcome

    def line(self, probe: Probe, search: Search, unit: str, left_s: float) -> str:
        share = probe.figure("connected_share")
        peak = probe.figure("peak_connected")
        shown = (
            f"connected {share:.1%}, peak {peak:,.0f}"
            if share is not None and peak is not None
            else ""
        )
        return probe_line(probe, search, unit, left_s, shown)


def _k6_logs(path: Path) -> list[str]:
    """The end of each runner's k6.log under the probe's directory (where the backend keeps
    them: locally, ``runners/<i>/k6.log``), the lines that mention open files."""
    found = []
    for log in sorted((path / "runners").glob("*/k6.log")):
        try:
            with log.open("rb") as handle:
                handle.seek(max(0, log.stat().st_size - LOG_BYTES))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        found.append("\n".join(x for x in text.splitlines() if OPEN_FILES_ERROR in x))
    return found
