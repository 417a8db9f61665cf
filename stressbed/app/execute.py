"""``stressbed run`` after planning: the pipeline of one run, as stages threaded one into the next.

    render (a new run directory) -> provision -> run the fleet
    finally, under one interrupt guard: a provisional summary -> teardown -> merge -> evaluate
    -> report (summary.json, then report.html)

Everything goes through the plan's backend (:class:`~stressbed.backends.base.Backend`); this
module knows no backend by name. The stack is torn down and the fleet stops every runner
before :func:`execute` returns, also on failure and interruption, and every run that started
writes its summary: a stressbed killed during its teardown (a CI job's SIGKILL) leaves the
provisional one, verdict ``error``.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..backends.base import Backend, Fleet, FleetOutcome, FleetSpec, Health, Progress, Stack
from ..backends.existing import ExistingService
from ..errors import StressbedError, TeardownError
from ..fleet.process import TeardownAbandoned, uninterrupted
from ..results.compare import compare, fingerprint_digest
from ..results.merge import FleetResult, merge
from ..results.summary import RunReport
from ..results.target_metrics import parse_selector
from ..results.verdict import Verdict, evaluate, judge
from ..scenario.model import Scenario
from .compare import ALLOW_PARTIAL, Baseline, exit_code_for, incomplete
from .figures import fault_figures, write_figures
from .live_page import Ended, LivePage
from .plan import Plan, redact
from .readback import StoredWrites, read_back
from .recording import Recorder, among_earlier, run_entry
from .rundir import RunDirectory, new_run

if TYPE_CHECKING:  # a type only: the runner image has no prometheus-client
    from ..results.live_series import LiveSeries

__all__ = [
    "DEADLINE_MARGIN_S",
    "PROVISIONAL",
    "before_teardown",
    "conclude",
    "execute",
    "keep_teardown_problem",
    "make_stack",
    "tear_down",
    "write_provisional",
]

T = TypeVar("T")

#: Time allowed beyond the scenario's own duration and graceful stops.
DEADLINE_MARGIN_S = 30.0
#: The message of the summary written before the teardown, left if stressbed is killed then.
PROVISIONAL = "interrupted, tearing down"


def execute(
    the_plan: Plan,
    on_progress: Callable[[Progress], None] | None = None,
    *,
    backend: Backend | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    live: LiveSeries | None = None,
    page: LivePage | None = None,
) -> RunReport:
    """Render, provision, run the fleet, merge, judge and write the results of a planned run;
    ``backend`` replaces the plan's (a test's FakeBackend); ``live``: where the fleet's
    seconds go while it runs (every second of the run, once it has ended); ``page``: the live
    page drawing them, given the stack's samples and events and at the end the verdict.

    The stack is torn down before this returns, whatever happened; a stack that could not be
    provisioned ends the run with exit code 3 and a summary saying why.
    """
    backend = backend or the_plan.backend
    scenario = the_plan.scenario
    run = new_run(the_plan.results, scenario)
    if live is not None:
        live.identity = {
            "run_id": run.run_id,
            "scenario": scenario.name,
            # What ran, as a digest: runs of the same thing share it (compare's like for like).
            "fingerprint": fingerprint_digest(the_plan.fingerprint),
        }
        live.thresholds = list(scenario.thresholds)
    if page is not None:
        page.total_s = scenario.duration_ms() / 1000
    outcome = FleetOutcome(results=[])
    stack: Stack = ExistingService("")  # until the backend's stack exists: nothing to remove
    secret_env: dict[str, str] = {}
    stored: StoredWrites | None = None
    # Whatever goes wrong from here on, the stack is torn down and the run writes its summary.
    try:
        try:
            stack, secret_env = make_stack(the_plan, backend, run, on_event)
            url = stack.provision()
        except StressbedError as exc:  # a replica never ready (3), the stack's port taken (2)
            outcome.failure, outcome.failure_code = f"provisioning failed: {exc}", exc.exit_code
        except KeyboardInterrupt:
            outcome.interrupted = True
        except Exception as exc:  # an OS error or a bug: still a run that ends with a summary
            outcome.failure = f"provisioning failed: {type(exc).__name__}: {exc}"
        else:
            if live is not None:
                live.stack = stack.report
            if page is not None:
                page.events = lambda: stack.events
            env = {**secret_env, "TARGET_URL": url}
            faults = the_plan.scenario.faults
            outcome = _run_fleet(
                the_plan,
                backend.fleet,
                run,
                env=env,
                on_progress=on_progress,
                health=stack.failure,
                live=live,
                # The faults' clock starts when the runners are released.
                on_start=(lambda t: stack.schedule_faults(faults, t)) if faults else None,
            )
            # While the stack is still up: what it stored of what the load saw acknowledged.
            try:
                stored = _read_back(scenario, url, outcome, secret_env)
            except KeyboardInterrupt:
                outcome.interrupted = True
                stored = StoredWrites(problem="not read back: interrupted")
    finally:
        # From here to the last file written, an interrupt (a CI cancel: SIGINT, SIGTERM,
        # then SIGKILL) neither stops the teardown nor costs the run its summary.
        with uninterrupted():
            report = _finish(the_plan, backend, run, outcome, stack, stored=stored, live=live)
            if live is not None:  # the seconds no live snapshot brought: the run's own
                live.fill(report.fleet.windows)
            if live is not None and live.stack is not None:
                live.stack = lambda: report.stack  # the stack is gone: its final report
            if page is not None:
                html = run.path / "report.html"
                page.finish(
                    Ended(
                        report.verdict.value,
                        report.message,
                        html if report.report_error is None and html.is_file() else None,
                    )
                )
    return report


def _finish(
    the_plan: Plan,
    backend: Backend,
    run: RunDirectory,
    outcome: FleetOutcome,
    stack: Stack,
    *,
    stored: StoredWrites | None,
    live: LiveSeries | None = None,
) -> RunReport:
    """A provisional summary, the teardown, then the run's own summary (over it)."""
    scenario = the_plan.scenario
    live_url = live.url if live is not None else None
    settings = _settings(the_plan, backend, run, stack, live_url)
    fleet = write_provisional(run, scenario, outcome, stack, settings)
    problem, abandoned = tear_down(stack)
    if problem is not None:
        keep_teardown_problem(outcome, problem, abandoned=abandoned)
    settings = _settings(the_plan, backend, run, stack, live_url)
    report = conclude(run, scenario, outcome, stack, settings, stored=stored, fleet=fleet)
    report.fingerprint = dict(the_plan.fingerprint)
    if the_plan.baseline is not None:
        _judge_against(report, the_plan.baseline)
    recorder = Recorder(the_plan.history, the_plan.build)
    among_earlier(report, recorder, run.path, gate=the_plan.gate_history)
    report.write(run.path)
    recorder.record(run_entry(run.path))
    return report


def _settings(
    the_plan: Plan, backend: Backend, run: RunDirectory, stack: Stack, live_url: str | None = None
) -> dict[str, Any]:
    return {
        "runners": the_plan.runners,
        "backend": backend.name if the_plan.target_url is None else None,
        "target_url": redact(stack.url) if stack.url else None,
        "target_metrics_url": (
            redact(the_plan.target_metrics_url) if the_plan.target_metrics_url else None
        ),
        "bundle": str(run.bundle.root),
        "scenario_duration_s": the_plan.scenario.duration_ms() / 1000,
        "keep_raw": the_plan.keep_raw,
        "profile": the_plan.profile,
        "sources": dict(the_plan.sources),
        # The live endpoint it was served on while it ran (None: not served).
        "live_url": live_url,
    }


def write_provisional(
    run: RunDirectory,
    scenario: Scenario,
    outcome: FleetOutcome,
    stack: Stack,
    settings: dict[str, Any],
) -> FleetResult | None:
    """summary.json as it stands before the teardown: verdict ``error``, what was merged so
    far; the merge, to be used again (None if it failed). A stressbed killed while tearing
    down (a CI job's SIGKILL after its SIGTERM) leaves this one; the run's own replaces it
    once the teardown is over. Never raises: the teardown comes next whatever happens here."""

    def write() -> FleetResult:
        fleet = merge(outcome.results)
        report = conclude(run, scenario, outcome, stack, settings, fleet=fleet)
        ended = "" if outcome.interrupted else f"; the run had ended: {report.message}"
        report.verdict, report.exit_code = Verdict.ERROR, 130
        report.message = PROVISIONAL + ended
        report.write(run.path, html=False)
        return fleet

    return before_teardown("summary", write)


def before_teardown(what: str, write: Callable[[], T]) -> T | None:
    """``write`` (a provisional ``what``) done so that it never keeps the stack up: its value,
    or None when it failed (said on stderr) or a second Ctrl-C came (the teardown, next, may
    still be abandoned)."""
    try:
        return write()
    except TeardownAbandoned:
        return None
    except Exception as exc:  # a bug here must not keep the stack up
        print(f"stressbed: error: provisional {what}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def _read_back(
    scenario: Scenario, url: str, outcome: FleetOutcome, secret_env: Mapping[str, str]
) -> StoredWrites | None:
    """What the target stored of each writer the load saw acknowledged, or why not known."""
    writes = scenario.writes
    if writes is None:
        return None
    if outcome.interrupted or outcome.timed_out:
        return StoredWrites(problem="not read back: the run did not end by itself")
    acked: dict[str, int] = {}
    for result in outcome.results:
        for writer, count in result.writes.items():
            acked[writer] = acked.get(writer, 0) + count
    name = writes.token
    token = (secret_env.get(name) or os.environ.get(name)) if name else None
    if name and not token:
        return StoredWrites(problem=f"not read back: {name} is not set")
    return read_back(writes, url, acked, token)


def _judge_against(report: RunReport, baseline: Baseline) -> None:
    """The run against its baseline: in summary.json, junit.xml, the report and the exit
    code (a run that passed its thresholds but regressed exits 1). A run that ended in error
    or without every runner's result is not compared, unless allowed partial."""
    present = {r.index for r in report.runners}
    why = incomplete(report.verdict.value, report.fingerprint.get("runners"), present)
    if why is not None and not baseline.allow_partial:
        report.message += f" (not compared with the baseline: {why}; {ALLOW_PARTIAL})"
        return
    windows = merge(baseline.run.runners).windows
    report.baseline = str(baseline.path)
    report.baseline_runners = list(baseline.run.runners)
    report.strict = baseline.strict
    found = compare(windows, report.fleet.windows, baseline.tolerances)
    report.comparison = found.only(baseline.metrics)
    code = exit_code_for(report.comparison, strict=baseline.strict)
    if code and report.exit_code == 0:
        worse = [
            m.metric
            for m in report.comparison.metrics
            if m.verdict == "regressed" or (baseline.strict and m.verdict == "inconclusive")
        ]
        report.exit_code = code
        report.verdict = Verdict.FAIL
        report.message = f"{report.comparison.verdict} against the baseline: " + ", ".join(worse)


def _run_fleet(
    the_plan: Plan,
    make_fleet: Callable[[Path, Path, FleetSpec, dict[str, str]], Fleet],
    run: RunDirectory,
    *,
    env: dict[str, str],
    on_progress: Callable[[Progress], None] | None,
    health: Health,
    live: LiveSeries | None = None,
    on_start: Callable[[float], None] | None = None,
) -> FleetOutcome:
    scenario = the_plan.scenario
    try:
        spec = FleetSpec(runners=the_plan.runners, keep_raw=the_plan.keep_raw, live=live)
        fleet = make_fleet(run.bundle.root, run.path, spec, env)
        deadline = scenario.duration_ms() / 1000 * 1.1 + DEADLINE_MARGIN_S
        return fleet.run(
            deadline,
            abort_thresholds=[t for t in scenario.thresholds if t.abort_on_fail],
            judge=judge,
            on_progress=on_progress,
            health=health,
            on_start=on_start,
        )
    except KeyboardInterrupt:
        return FleetOutcome(results=[], interrupted=True)
    except Exception as exc:  # the fleet's own failure: no runner result to keep
        return FleetOutcome(results=[], failure=f"the fleet failed: {type(exc).__name__}: {exc}")


def make_stack(
    the_plan: Plan,
    backend: Backend,
    run: RunDirectory,
    on_event: Callable[[dict[str, Any]], None] | None,
) -> tuple[Stack, dict[str, str]]:
    """The run's stack (not provisioned yet) and the secrets it shares with the runners."""
    if the_plan.target_url is not None:
        selectors = [parse_selector(series) for series in the_plan.target_series]
        url, metrics_url = the_plan.target_url, the_plan.target_metrics_url
        faulty = bool(the_plan.scenario.faults)  # only the path's: the plan refused the others
        return ExistingService(url, metrics_url, selectors, path_faults=faulty), {}
    assert the_plan.stack is not None  # plan() gives a stack whenever there is no target URL
    # A secret the environment lacks is made for this run only and lives nowhere but in the
    # stack's and the runners' environments.
    secret_env = {
        name: os.environ.get(name) or secrets.token_urlsafe(24)
        for name in the_plan.stack.target.secret_env
    }
    return backend.stack(the_plan.stack, run.path / "stack", on_event, secret_env), secret_env


def keep_teardown_problem(outcome: FleetOutcome, problem: str, *, abandoned: bool) -> None:
    """What teardown could not do is never lost: it says what is left and how to remove it.
    An abandoned teardown makes the run an interrupted one."""
    if outcome.interrupted or abandoned:
        outcome.interrupted = True
        outcome.note = problem
    elif outcome.failure is not None:
        outcome.failure = f"{outcome.failure}; teardown: {problem}"
    elif outcome.timed_out:
        outcome.failure = f"the run passed its deadline; runners stopped; teardown: {problem}"
    else:
        outcome.failure = problem


def tear_down(stack: Stack) -> tuple[str | None, bool]:
    """Tear the stack down: what went wrong, if anything, and whether the user abandoned it."""
    with uninterrupted():
        try:
            stack.teardown()
        except TeardownAbandoned:
            left = stack.leftovers() or "nothing"
            print(f"stressbed: teardown abandoned; left: {left}", file=sys.stderr)
            return f"teardown abandoned; left: {left}", True
        except Exception as exc:  # reported in the summary, never instead of it
            text = str(exc) if isinstance(exc, StressbedError) else f"{type(exc).__name__}: {exc}"
            for line in exc.failures if isinstance(exc, TeardownError) else [text]:
                print(f"stressbed: error: teardown: {line}", file=sys.stderr)  # one a step
            return text, False
    return None, False


def conclude(
    run: RunDirectory,
    scenario: Scenario,
    outcome: FleetOutcome,
    stack: Stack,
    settings: dict[str, Any],
    *,
    stored: StoredWrites | None = None,
    fleet: FleetResult | None = None,
) -> RunReport:
    """Merge the runners' results (unless ``fleet`` is their merge already), judge the
    thresholds, and say how the run ended; ``stored``: what the target read back of the
    scenario's writes."""
    fleet = fleet if fleet is not None else merge(outcome.results)
    plateau = scenario.plateau_s()
    results = evaluate(scenario.thresholds, fleet, plateau)
    failed = [r for r in results if not r.ok]
    if outcome.interrupted:
        done = outcome.note or "every runner was stopped and the stack torn down"
        verdict, code, message = Verdict.ERROR, 130, f"interrupted; {done}"
    elif outcome.failure is not None:
        verdict, code, message = Verdict.ERROR, outcome.failure_code, outcome.failure
    elif outcome.timed_out:
        verdict, code, message = Verdict.ERROR, 3, "the run passed its deadline; runners stopped"
    elif any(r.status.failed for r in outcome.results):
        # A runner that failed without the fleet seeing it live (its last words came late).
        broken = next(r for r in outcome.results if r.status.failed)
        reason = broken.reason or broken.status.value
        verdict, code, message = Verdict.ERROR, 3, f"runner {broken.index}: {reason}"
    elif outcome.aborted_by is not None or failed:
        names = [
            f"{r.threshold.key} {r.threshold.expression}" + (" (no data)" if r.no_data else "")
            for r in failed
        ]
        if outcome.aborted_by is not None:
            aborted = f"{outcome.aborted_by.key} {outcome.aborted_by.expression}"
            names = [aborted] + [n for n in names if n != aborted]
            message = "aborted: threshold failed fleet-wide: " + ", ".join(names)
        else:
            message = "thresholds failed: " + ", ".join(names)
        verdict, code = Verdict.FAIL, 1
    else:
        verdict, code, message = Verdict.PASS, 0, "all thresholds passed"
    events = sorted([*outcome.events, *stack.events], key=lambda e: float(e.get("t", 0)))
    writes = write_figures(fleet, stored) if scenario.writes is not None else None
    faults = fault_figures(scenario, fleet, events, stored) if scenario.faults else None
    missed = [v for v in (faults or {}).get("verdicts", []) if not v["passed"]]
    if missed and verdict is Verdict.PASS:
        shown = ", ".join(f"{v['threshold']} ({v['fault']}: {_observed(v)})" for v in missed)
        verdict, code, message = Verdict.FAIL, 1, f"resilience failed: {shown}"
    return RunReport(
        run_id=run.run_id,
        scenario=scenario.name,
        verdict=verdict,
        exit_code=code,
        message=message,
        fleet=fleet,
        thresholds=results,
        runners=outcome.results,
        start_skew_ms=outcome.start_skew_ms,
        events=events,
        stack=stack.report(),
        settings=settings,
        resilience=faults,
        writes=writes,
        plateau=plateau,
    )


def _observed(verdict: Mapping[str, Any]) -> str:
    value = verdict.get("observed")
    return "not measured" if value is None else f"{value:g}"
