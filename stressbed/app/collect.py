"""``stressbed collect``: a fleet started by hand in a cluster (``pulumi up`` + its
``startCommand``) read back from its runners' logs, merged and judged like any run."""

from __future__ import annotations

from pathlib import Path

from ..backends.base import FleetOutcome
from ..backends.existing import ExistingService
from ..backends.kubernetes import ClusterApi, fleet_abort, fleet_results
from ..results.summary import RunReport
from ..scenario import catalog
from .compare import run_fingerprint
from .execute import conclude
from .rundir import new_run

__all__ = ["collect"]


def collect(
    namespace: str, job: str, scenario: str, results: Path, *, api: ClusterApi
) -> RunReport:
    """Merge and judge the finished runner Job ``job`` in ``namespace``; the run is written to
    ``results/<run-id>/`` as ``stressbed run`` writes one. ConfigError (exit 2), with nothing
    written, when the Job has no pods or is still running."""
    loaded = catalog.load(scenario)
    found = fleet_results(api, namespace, job)
    run = new_run(results, loaded)
    run.keep_results(found)
    stack = ExistingService(f"namespace {namespace}")
    settings = {
        "runners": len(found),
        "backend": "kubernetes",
        "target_url": stack.url,
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
    report = conclude(run, loaded, outcome, stack, settings)
    # As `stressbed run --backend kubernetes` would have run it: a baseline for later runs.
    # The stack the Pulumi program made is not known here (its profile), so it is left out.
    report.fingerprint = run_fingerprint(loaded, len(found), "kubernetes", None)
    report.write(run.path)
    return report
