"""Planning a run: load and validate everything, build the backend, check it can do the run.

Nothing starts here. Every problem is a :class:`~stressbed.errors.ConfigError` (exit 2) naming
the field, the value and what is allowed: an unknown scenario, bad options, a StackSpec that
does not validate, a backend that cannot honour what the run asks (``--target-url`` with a
backend whose fleet only loads its own stack, ``abort_on_fail`` thresholds with one that cannot
judge them live), or a backend whose preflight finds something missing (k6, the Pulumi CLI, a
kubeconfig).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import registry
from ..backends.base import Backend, Capability
from ..errors import ConfigError
from ..fleet.segments import MAX_RUNNERS
from ..results.compare import Tolerances
from ..results.redact import redact
from ..results.samples import parse_selector
from ..scenario import catalog
from ..scenario.capacity import window_judgeable
from ..scenario.faults import Fault
from ..scenario.model import Scenario
from ..scenario.thresholds import Threshold, threshold
from ..scenario.units import parse_duration_ms
from ..stack.agent import reference_agent
from ..stack.spec import StackSpec
from .compare import Baseline, load_baseline, run_fingerprint
from .recording import MAX_GATE_RUNS, MIN_GATE_RUNS, build_of, location_of
from .settings import apply_stack

__all__ = ["Plan", "RunOptions", "plan", "redact"]


@dataclass(frozen=True)
class RunOptions:
    scenario: str
    #: An existing service to load; None provisions ``stack`` on ``backend``.
    target_url: str | None = None
    #: With ``target_url``: where that service's Prometheus metrics are (scraped each second).
    target_metrics_url: str | None = None
    runners: int = 1
    duration: str | None = None
    results: Path = Path("results")
    keep_raw: bool = False
    #: The history store (None: results/history.db; "off": none) and the build under test.
    history: str | None = None
    build: str | None = None
    #: Gate on the history: fail when the run leaves what its last N like-for-like runs make
    #: likely (None: no gate).
    gate_history: int | None = None
    backend: str = "local"
    #: Settings that go to the backend (``port``, ``kubeconfig``, ...); each backend takes
    #: its own (:attr:`~stressbed.backends.base.Backend.option_keys`).
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    stack: StackSpec | None = None  # None: the reference agent
    #: Per metric key, k6 expressions that replace the scenario's thresholds on it.
    thresholds: Mapping[str, list[str] | None] = field(default_factory=dict)
    #: Where each effective setting came from (recorded in summary.json).
    sources: Mapping[str, str] = field(default_factory=dict)
    profile: str | None = None
    #: A run to judge this one against (its directory or summary.json), like for like.
    baseline: Path | None = None
    allow_different: bool = False  # compare with a baseline that ran something else
    #: Compare with a baseline (or as a run) with a runner's result missing or verdict error.
    allow_partial: bool = False
    strict: bool = False  # an inconclusive comparison fails the run too
    tolerances: Tolerances = field(default_factory=Tolerances)
    compared: tuple[str, ...] = ()  # the metrics to compare with the baseline; () all


@dataclass(frozen=True)
class Plan:
    """A validated run: nothing has started yet."""

    scenario: Scenario
    target_url: str | None
    runners: int
    results: Path
    keep_raw: bool
    backend: Backend  # built and preflighted; nothing of it exists yet
    stack: StackSpec | None = None  # validated, LimitRange defaults applied
    sources: Mapping[str, str] = field(default_factory=dict)
    profile: str | None = None
    #: With ``target_url``: its metrics page, and the series to keep of it.
    target_metrics_url: str | None = None
    target_series: tuple[str, ...] = ()
    #: What this run runs (summary.json ``fingerprint``): like for like with a baseline.
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    baseline: Baseline | None = None
    #: Where the run is recorded (None: nowhere), the build it tests, and the history gate.
    history: str | None = None
    build: str | None = None
    gate_history: int | None = None


def plan(options: RunOptions) -> Plan:
    """Load and validate everything; raises ConfigError (exit 2) before anything starts."""
    if not options.scenario:
        raise ConfigError(
            "--scenario", None, "a scenario name or path (or `scenario:` in the profile file)"
        )
    scenario = catalog.load(options.scenario)
    if options.thresholds:
        scenario = scenario.with_thresholds(_thresholds(scenario, options.thresholds))
    _check_resilience(scenario)
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
    _check_gate(options)
    backend = registry.create(options.backend, options.backend_options)
    _refuse_foreign_options(backend, options)
    target = None if options.target_url is None else _target(options.target_url)
    # The stack spec matters with a target URL only for its metrics' series.
    needed = target is None or options.target_metrics_url is not None
    # Without a stack from the settings (a caller of its own), the one the scenario declares.
    spec = (options.stack or _declared_stack(options.scenario)).validate() if needed else None
    stack = None if target is not None else spec
    metrics_url = None
    if options.target_metrics_url is not None:
        if target is None:
            raise ConfigError(
                "--target-metrics-url",
                redact(options.target_metrics_url),
                "only with --target-url (a provisioned stack is scraped as its spec says)",
            )
        if spec is None or spec.metrics is None:
            raise ConfigError(
                "--target-metrics-url",
                redact(options.target_metrics_url),
                "stack.metrics.series in the profile: the series to keep",
            )
        metrics_url = _target(options.target_metrics_url, "--target-metrics-url")
        if urllib.parse.urlsplit(metrics_url).username is not None:
            raise ConfigError(
                "--target-metrics-url",
                redact(metrics_url),
                "a URL without user:password (the scrape sends no credentials)",
            )
    _check_capabilities(backend, scenario, target, stack)
    planned = run_fingerprint(scenario, options.runners, backend.name if stack else None, stack)
    baseline = None
    if options.baseline is not None:
        found = load_baseline(
            options.baseline,
            planned,
            allow_different=options.allow_different,
            allow_partial=options.allow_partial,
        )
        baseline = Baseline(
            found, options.tolerances, options.strict, options.compared, options.allow_partial
        )
    backend.preflight(stack, scenario)
    return Plan(
        scenario=scenario,
        target_url=target,
        runners=options.runners,
        results=options.results,
        keep_raw=options.keep_raw,
        backend=backend,
        stack=stack,
        sources=dict(options.sources),
        profile=options.profile,
        target_metrics_url=metrics_url,
        target_series=spec.metrics.series if metrics_url and spec and spec.metrics else (),
        fingerprint=planned,
        baseline=baseline,
        history=location_of(options.history, options.results),
        build=build_of(options.build),
        gate_history=options.gate_history,
    )


def _check_gate(options: RunOptions) -> None:
    """``--gate-history N``: a whole number of earlier runs, and a store to read them from."""
    n = options.gate_history
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_GATE_RUNS <= n <= MAX_GATE_RUNS:
        raise ConfigError(
            "--gate-history", n, f"a whole number of earlier runs {MIN_GATE_RUNS}..{MAX_GATE_RUNS}"
        )
    if location_of(options.history, options.results) is None:
        raise ConfigError("--gate-history", n, "a history store to read (not --history off)")


def _refuse_foreign_options(backend: Backend, options: RunOptions) -> None:
    """An option given on this command line that the chosen backend does not take is a mistake.
    (The profile file and the environment may hold settings for several backends.)"""
    for key, value in options.backend_options.items():
        if key not in backend.option_keys and options.sources.get(key) == "command line":
            takes = ", ".join(f"--{k.replace('_', '-')}" for k in backend.option_keys) or "none"
            raise ConfigError(
                f"--{key.replace('_', '-')}",
                value,
                f"an option of --backend {backend.name} ({takes})",
            )


def _declared_stack(scenario: str) -> StackSpec:
    """The reference agent with the scenario module's ``stack`` overrides."""
    declared = catalog.load_stack(scenario)
    if not declared:
        return reference_agent()
    return apply_stack(reference_agent(), declared, "the scenario module's stack")


def _check_capabilities(
    backend: Backend, scenario: Scenario, target: str | None, stack: StackSpec | None
) -> None:
    """Refuse what the backend would otherwise silently not do."""
    name = backend.name
    if target is None and Capability.PROVISION not in backend.capabilities:
        raise ConfigError("--backend", name, "a backend that provisions the stack, or --target-url")
    if target is not None and Capability.EXISTING_TARGET not in backend.capabilities:
        raise ConfigError(
            "--target-url",
            target,
            f"no --target-url with --backend {name}, whose runners load only the stack it "
            "provisions (--backend local loads an existing service)",
        )
    for item in scenario.faults:
        _check_fault(backend, item, target, stack)
    unreachable = target is None and Capability.READ_BACK not in backend.capabilities
    if scenario.writes is not None and unreachable:
        raise ConfigError(
            "writes",
            f"read back from --backend {name}",
            "a stack stressbed reaches after the load (--backend local), or --target-url",
        )
    if Capability.LIVE_ABORT not in backend.capabilities:
        for t in scenario.thresholds:
            if t.abort_on_fail:
                raise ConfigError(
                    f"thresholds.{t.key}",
                    f"{t.expression} with abort_on_fail",
                    f"no abort_on_fail with --backend {name}: its fleet cannot judge "
                    "thresholds while it runs (replace the threshold in a profile, or use "
                    "--backend local)",
                )


#: Resilience measures read from the per-second SLO judgement (a recovery, and the errors
#: until it): without an SLO a second can judge, every second would read as held.
_JUDGED_ON_SLOS = ("recovery_time", "errors_during_fault")


def _check_resilience(scenario: Scenario) -> None:
    """A resilience threshold that needs the SLOs judged second by second has some to judge
    (after a profile's thresholds replaced the scenario's), as a capacity search needs
    --slo."""
    if any(window_judgeable(t) for t in scenario.thresholds):
        return
    for i, item in enumerate(scenario.resilience):
        if item.metric in _JUDGED_ON_SLOS:
            raise ConfigError(
                f"resilience[{i}]",
                item.label,
                "a latency or error-rate threshold one second can judge, like "
                "latency('p(95) < 300ms') or error_rate('< 1%') without abort_on_fail (the "
                f"thresholds have none: {item.metric} would read every second as held)",
                scenario=scenario.name,
            )


def _check_fault(
    backend: Backend, item: Fault, target: str | None, stack: StackSpec | None
) -> None:
    """A fault this run can apply: a kind the backend applies, a stack when it needs one, and
    no more replicas than the stack starts with."""
    where = f"faults.{item.name}"
    if item.kind not in backend.fault_kinds:
        kinds = ", ".join(sorted(backend.fault_kinds)) or "none yet"
        why = backend.fault_refusals.get(item.kind)
        because = f"; not {item.kind}: {why}" if why else ""
        raise ConfigError(
            where, item.label, f"a fault --backend {backend.name} applies ({kinds}){because}"
        )
    backend.check_fault(item)
    if item.needs_stack and (target is not None or stack is None):
        raise ConfigError(
            where, item.label, "a provisioned stack: this fault acts on a replica, not on a URL"
        )
    if target is not None:  # the path's faults: in a balancer put in front of the target
        if not target.startswith("http://"):
            raise ConfigError(
                where, item.label, "a plain-http --target-url (the balancer forwards bytes)"
            )
        if item.replicas is not None:
            raise ConfigError(
                f"{where}.replicas", item.replicas, "none with --target-url: one path, all of it"
            )
    if item.kind == "dependency" and stack is not None:
        hook = stack.fault_hook
        named = ", ".join(n for n, _ in hook.dependencies) if hook is not None else ""
        if hook is None or hook.kind_of(str(item.param("target"))) is None:
            raise ConfigError(
                where,
                item.label,
                f"a dependency the stack's fault_hook injects ({named or 'it has no fault_hook'})",
            )
    if stack is not None and item.replicas is not None:
        least = stack.autoscaler.min_replicas if stack.autoscaler else stack.replicas
        if item.replicas > least:
            raise ConfigError(
                f"{where}.replicas",
                item.replicas,
                f"at most the {least} replica(s) the stack starts with",
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


def _target(url: str, option: str = "--target-url") -> str:
    """``url`` checked: a base URL (the requests' paths are appended to it, so no query),
    or a metrics page (whose query may carry what it needs, a token too). The URL refused is
    shown redacted: an error line ends up in CI logs."""
    base = option == "--target-url"
    expected = "an http(s) base URL like http://127.0.0.1:8080"
    if not base:
        expected = "an http(s) URL like http://127.0.0.1:8080/metrics"
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ConfigError(option, redact(url), expected) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(option, redact(url), expected)
    if base and parsed.query:
        raise ConfigError(option, redact(url), expected + ", without a query")
    return url if parsed.query else url.rstrip("/")
