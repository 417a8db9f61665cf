"""``stressbed collect``: a fleet started by hand in a cluster (``pulumi up`` + its
``startCommand``) read back from its runners' logs, merged and judged like any run."""

from __future__ import annotations

from pathlib import Path

from ..backends.base import FleetOutcome
from ..backends.existing import ExistingService
from ..backends.kubernetes import ClusterApi, fleet_abort, fleet_results
from ..errors import ConfigError
from ..results.summary import RunReport
from ..scenario import catalog
from ..scenario.model import Scenario
from ..scenario.units import parse_duration_ms
from ..stack.spec import StackSpec
from .compare import run_fingerprint
from .execute import conclude
from .recording import Recorder, among_earlier, run_entry
from .rundir import new_run
from .settings import resolve, stack_of

__all__ = ["collect", "collected_scenario", "declared_stack"]


def collected_scenario(scenario: str, duration: str | None) -> Scenario:
    """The scenario as the fleet ran it: scaled to ``duration`` (the Pulumi program's
    ``stressbed:duration``) when one is given, as ``stressbed run --duration`` scales it."""
    loaded = catalog.load(scenario)
    if duration is None:
        return loaded
    duration_ms = parse_duration_ms(duration, "--duration")
    if duration_ms < 1000:
        raise ConfigError("--duration", duration, "at least 1s (k6's shortest)")
    return loaded.scaled_to(duration_ms)


def declared_stack(scenario: str, profile: str | None, profiles: Path | None) -> StackSpec:
    """The stack spec a run of ``scenario`` declares (what its fingerprint records) as the
    Pulumi program in infra/ resolves it: the reference agent, the scenario module's own
    overrides, then the settings file's (its profile, else its default one)."""
    settings = resolve({}, {}, profile=profile, file=profiles)
    return stack_of(settings, catalog.load_stack(scenario))


def collect(
    namespace: str,
    job: str,
    scenario: str,
    results: Path,
    *,
    api: ClusterApi,
    duration: str | None = None,
    stack: StackSpec | None = None,
    recorder: Recorder | None = None,
) -> RunReport:
    """Merge and judge the finished runner Job ``job`` in ``namespace``; the run is written to
    ``results/<run-id>/`` as ``stressbed run`` writes one, its fingerprint that of the run the
    Pulumi program launched (``duration``: the one it scaled the scenario to; ``stack``: the
    spec it declared). ConfigError (exit 2), with nothing written, when the Job has no pods or
    is still running."""
    loaded = collected_scenario(scenario, duration)
    found = fleet_results(api, namespace, job)
    run = new_run(results, loaded)
    run.keep_results(found)
    service = ExistingService(f"namespace {namespace}")
    settings = {
        "runners": len(found),
        "backend": "kubernetes",
        "target_url": service.url,
        "bundle": str(run.bundle.root),
        "scenario_duration_s": loaded.duration_ms() / 1000,
        "keep_raw": False,
        "profile": None,
        "sources": {},
    }
    # The coordinator may have stopped the fleet on an abort_on_fail threshold: say so.
    aborting = [t for t in loaded.thresholds if t.abort_on_fail]
    aborted = fleet_abort(api, namespace, job, aborting) if aborting else None
    outcome = FleetOutcome(results=found, aborted_by=aborted)
    report = conclude(run, loaded, outcome, service, settings)
    # As `stressbed run --backend kubernetes` would have run it: a baseline for later runs,
    # and comparable with them.
    report.fingerprint = run_fingerprint(loaded, len(found), "kubernetes", stack)
    if recorder is not None:  # in the history as the run it is (kind "collect")
        among_earlier(report, recorder, run.path)
    report.write(run.path)
    if recorder is not None:
        recorder.record(run_entry(run.path, kind="collect"))
    return report
