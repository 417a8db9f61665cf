"""``--backend kubernetes``: an ephemeral Pulumi stack per run, through the Automation API.

    preflight (exit 2: no pulumi CLI, no kubeconfig, no such context; nothing created)
    provision: select the stack -> up (AgentStack; Pulumi waits for the agent to be ready)
               (:mod:`._stack`; the stack's record of the run from then on, :mod:`._watch`)
    fleet:     up again with the RunnerFleet -> follow the runner pods -> collect each
               runner's result document from its log -> the same merge as the local fleet;
               a next fleet (a capacity probe) replaces it in the same way, by a new name
    teardown:  destroy, then remove the stack, always (failure, Ctrl-C, SIGTERM)

The engine and the cluster sit behind two seams, :class:`~._engine.Engine` (the Automation API)
and :class:`~._cluster.ClusterApi` (the Kubernetes API), so the orchestration is tested without
either. Runner failures end the run naming the runner: OOMKilled, evicted, an image that cannot
be pulled, Pending past a deadline, a failed pod; nothing waits past the run's deadline, which
counts from the coordinator's release of the runners (what comes before it, scheduling, image
pulls, k6 starting and setup(), is bounded by deadlines of its own, and the Jobs'
activeDeadlineSeconds is sized from both). The coordinator pod follows the runners once it has
released them (their merged progress once a second in its log, ``abort_on_fail`` thresholds
judged on the merged data and every runner stopped when one fails); this side reads both from
the tail of its log (and the whole log once, at the end, for an abort it may have missed),
gives the runners 30 s after an abort to stop and leave their results, and leaves the rest to
the teardown. A coordinator that fails after it started the fleet costs the live view (a
``coordinator-lost`` event), not the run.
"""

from __future__ import annotations

import json
import math
import os
import secrets as _secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ConfigError, ProvisionError
from ...fleet.control import TOKEN_ENV
from ...fleet.environment import declared_environment
from ...fleet.process import raise_if_interrupted
from ...fleet.segments import segment
from ...results.runner_result import RunnerResult, RunnerStatus
from ...scenario.faults import Fault
from ...scenario.model import Scenario
from ...scenario.render import agents_per_runner, bundle_files
from ...scenario.thresholds import Threshold
from ...stack.quantities import show_quantity
from ...stack.spec import StackSpec
from ..base import (
    Backend,
    Capability,
    EventSink,
    FleetOutcome,
    FleetSpec,
    Health,
    Judge,
    Progress,
    new_event,
)
from ._cluster import (
    ClusterApi,
    PodState,
    coordinator_reason,
    kubernetes_api,
    result_in_log,
    runner_failure,
)
from ._engine import (
    EngineFactory,
    automation_engine,
    state_dir,
)
from ._news import CoordinatorNews
from ._preflight import ClusterAccess, KubernetesOptions, preflight
from ._stack import KubeStack, RunState, last_line
from ._validate import check_bundle, check_stack
from .chaos import CHAOS_GROUP, CHAOS_MESH_VERSION, NEEDS_CHAOS_MESH, PLURALS
from .chaos import FAULT_KINDS as CHAOS_FAULT_KINDS
from .manifests import Cluster, ClusterFleet

__all__ = ["KubeFleet", "KubeStack", "KubernetesBackend"]

POLL_S = 2.0
MAX_API_ERRORS = 5
#: After an abort, how long the runners have to stop and leave their results.
ABORT_GRACE_S = 30.0
#: The first fleet of a run; the next ones are numbered (a capacity search's probes).
FLEET_NAME = "stressbed-runners"
#: Beyond its parts, what the time before the release may take: the release itself and the
#: poll or two in which this side reads the coordinator's `started` line.
START_SLACK_S = 30.0
#: The Jobs' activeDeadlineSeconds beyond this side's own deadlines: the cluster ends the
#: pods only after this side has given up on them (and its teardown deletes them anyway).
JOB_MARGIN_S = 60


class KubeFleet:
    """The Fleet side: the runners as an Indexed Job, followed until they finish."""

    def __init__(
        self, run: RunState, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]
    ) -> None:
        self.state = run
        self.bundle = bundle
        self.out_dir = out_dir
        self.spec = spec
        self.env = dict(env)
        self._events: list[dict[str, Any]] = []
        self._health: Health | None = None
        self._on_start: Callable[[float], None] | None = None
        self.agents = 0  # the simulated agents a runner holds at most (its pods are sized)

    def _event(self, kind: str, **fields: Any) -> None:
        event = new_event("fleet", kind, **fields)
        self._events.append(event)

    def _name(self) -> str:
        """This fleet's name: its Jobs', and the name label of its pods."""
        fleet = self.state.fleet
        return fleet.name if fleet is not None else fleet_name(1)

    def run(
        self,
        deadline_s: float,
        abort_thresholds: Sequence[Threshold] = (),
        judge: Judge | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        health: Health | None = None,
        *,
        on_start: Callable[[float], None] | None = None,
    ) -> FleetOutcome:
        # The coordinator judges abort_thresholds in the cluster (with the same judge as the
        # local fleet, stressbed.results.verdict.judge) and prints the fleet's progress; this
        # side reads both from its log.
        run = self.state
        self._health = health
        self._on_start = on_start
        outcome = FleetOutcome(results=[])
        # The runners' environment: TARGET_URL in their args, everything else is a secret:
        # what the scenario reads (its env and secret names, from stressbed's environment, as
        # every backend's runners get them), the stack's secrets, and this fleet's own control
        # token, which its coordinator bears (a new one each fleet, gone with its Secret).
        run.fleet_url = self.env.get("TARGET_URL") or run.url
        given = {**declared_environment(os.environ, self.bundle), **self.env}
        secret_env = {k: v for k, v in given.items() if k not in ("TARGET_URL", TOKEN_ENV)}
        run.fleet_secrets = {**secret_env, TOKEN_ENV: _secrets.token_urlsafe(32)}
        config = json.loads((self.bundle / "config.json").read_text(encoding="utf-8"))
        self.agents = agents_per_runner(config, self.spec.runners)
        requests, limits = run.options.runner_resources(self.agents)
        start_s = start_budget_s(run.options, self.spec)
        # Each fleet of the run has a name of its own: the next one replaces it in the same
        # `pulumi up` (new Jobs created, the last fleet's deleted with their finished pods),
        # and its pods are told apart from the last fleet's by their name label.
        run.fleets += 1
        run.fleet = ClusterFleet(
            name=fleet_name(run.fleets),
            runners=self.spec.runners,
            bundle=bundle_files(self.bundle),
            image=run.options.runner_image,
            requests=requests,
            limits=limits,
            # The run's deadline counts from the release; what comes before it (scheduling,
            # image pulls, k6 starting, setup()) is bounded apart, and the Jobs outlive both.
            deadline_s=math.ceil(start_s + deadline_s) + JOB_MARGIN_S,
            ready_timeout_s=math.ceil(run.options.ready_timeout_s),
            setup_timeout_s=math.ceil(self.spec.setup_timeout_s),
            secret_env=tuple(sorted(secret_env)),
            abort_thresholds=tuple(abort_thresholds),
        )
        news = CoordinatorNews(abort_thresholds, deadline_s, on_progress, self.spec.live)
        try:
            try:
                run.engine.up(run.program)
            except Exception as exc:
                outcome.failure = f"pulumi up of the fleet failed: {last_line(exc)}"
                outcome.events = list(self._events)
                return outcome
            self._event("fleet-created", runners=self.spec.runners, job=self._name())
            self._follow(outcome, (start_s, deadline_s), news)
        except KeyboardInterrupt:
            outcome.interrupted = True
            self._event("interrupted")
        outcome.results = self._collect(outcome)
        # When the runners were released, as the local fleet says it: the coordinator's
        # `started` line, or (its log lost) the earliest start a runner's result records.
        outcome.started_at, outcome.start_skew_ms = news.started_at, news.skew_ms
        if outcome.started_at is None:
            starts = [r.started_at for r in outcome.results if r.started_at and r.windows]
            outcome.started_at = min(starts) if starts else None
        outcome.events = list(self._events)
        return outcome

    def _follow(
        self, outcome: FleetOutcome, deadlines: tuple[float, float], news: CoordinatorNews
    ) -> None:
        """Follow the fleet until it ends: ``deadlines`` is (the time from its creation to the
        coordinator's release, the run's own from the release on)."""
        run = self.state
        ns = run.cluster.namespace
        name = self._name()
        started = time.monotonic()
        released: float | None = None  # when this side read that the runners were released
        last = ""
        api_errors = 0
        memory = show_quantity("memory", run.options.runner_resources(self.agents)[1].memory)
        while True:
            raise_if_interrupted()  # one Python lost (the engine's threads start processes)
            now = time.time()
            why = self._health() if self._health is not None else None
            if why is not None:
                outcome.failure = f"the stack failed during the run: {why}"
                self._event("stack-failed", reason=why)
                return
            try:
                pods = run.cluster_api.pods(ns, "runner", name) + run.cluster_api.pods(
                    ns, "coordinator", name
                )
                api_errors = 0
            except Exception as exc:  # a blip of the API server is retried, a few times
                api_errors += 1
                if api_errors >= MAX_API_ERRORS:
                    outcome.failure = f"the Kubernetes API did not answer: {last_line(exc)}"
                    self._event("api-failed", reason=outcome.failure)
                    return
                time.sleep(POLL_S)
                continue
            self._take_news(outcome, news, [p for p in pods if p.index < 0])
            if released is None and news.started:
                released = time.monotonic()
            if (
                outcome.aborted_by is not None
                and news.aborted_for(time.monotonic()) > ABORT_GRACE_S
            ):
                # The coordinator stopped them; what still runs is stopped by the teardown.
                self._event("abort-grace-over", seconds=ABORT_GRACE_S)
                return
            if not [p for p in pods if p.index >= 0] and (
                time.monotonic() - started > run.options.pending_deadline_s
            ):
                outcome.failure = (
                    f"no runner pod was created within {run.options.pending_deadline_s:g} s "
                    f"(see `kubectl -n {ns} describe job {name}`: quota, LimitRange or Pod "
                    "Security may have refused them)"
                )
                self._event("runner-failed", reason=outcome.failure)
                return
            failure = self._pod_failure(pods, now, memory, news)
            if failure is not None:
                outcome.failure = failure
                return
            runners = [p for p in pods if p.index >= 0]
            if len(runners) >= self.spec.runners and all(p.phase == "Succeeded" for p in runners):
                if outcome.aborted_by is None and news.thresholds:
                    # The abort may have left the tail between two polls: read the whole log.
                    self._take_news(outcome, news, [p for p in pods if p.index < 0], whole=True)
                self._event("fleet-finished", runners=len(runners))
                return
            if self._past_deadline(outcome, time.monotonic() - started, released, deadlines):
                return
            phases = ",".join(sorted(p.phase for p in runners))
            if phases != last:
                last = phases
                self._event("runners", phases={p.name: p.phase for p in runners})
            time.sleep(POLL_S)

    def _past_deadline(
        self,
        outcome: FleetOutcome,
        elapsed: float,
        released: float | None,
        deadlines: tuple[float, float],
    ) -> bool:
        """Whether the fleet is past a deadline (said in ``outcome``): not released within the
        first of ``deadlines`` of its creation (``elapsed``), or running past the second since
        its release (monotonic ``released``)."""
        start_s, deadline_s = deadlines
        if released is None and elapsed > start_s:
            outcome.failure = (
                f"the runners were not released within {start_s:g} s of the fleet's creation "
                f"(see `kubectl -n {self.state.cluster.namespace} logs "
                f"job/{self._name()}-coordinator`)"
            )
            self._event("start-deadline", seconds=round(start_s, 1), reason=outcome.failure)
            return True
        if released is not None and time.monotonic() - released > deadline_s:
            outcome.timed_out = True
            self._event("deadline", seconds=round(deadline_s, 1))
            return True
        return False

    def _pod_failure(
        self, pods: Sequence[PodState], now: float, memory: str, news: CoordinatorNews
    ) -> str | None:
        """Why a pod fails the run (said as an event), or None."""
        run = self.state
        for pod in pods:
            failure = runner_failure(pod, now, run.options.pending_deadline_s, memory)
            if failure is None:
                continue
            if pod.index < 0:
                failure += coordinator_reason(run.cluster_api, run.cluster.namespace, pod)
                if news.started:  # the fleet runs on; only its live view is lost
                    if not news.lost:
                        news.lost = True
                        self._event("coordinator-lost", pod=pod.name, reason=failure)
                    continue
            self._event("runner-failed", pod=pod.name, reason=failure)
            return failure
        return None

    def _take_news(
        self,
        outcome: FleetOutcome,
        news: CoordinatorNews,
        pods: Sequence[PodState],
        *,
        whole: bool = False,
    ) -> None:
        known = news.started_at is not None
        aborted = news.read(self.state.cluster_api, self.state.cluster.namespace, pods, whole)
        if not known and news.started_at is not None:
            skew = round(news.skew_ms, 3) if news.skew_ms is not None else None
            self._event("started", t=news.started_at, skew_ms=skew)  # when it released them
            if self._on_start is not None:
                self._on_start(news.started_at)
        if aborted is not None and outcome.aborted_by is None:
            outcome.aborted_by = aborted
            news.aborted_at = time.monotonic()
            self._event("aborted", threshold=aborted.key, expression=aborted.expression)

    def _collect(self, outcome: FleetOutcome) -> list[RunnerResult]:
        """Each runner's result document, from the last line of its pod's log."""
        run = self.state
        ns = run.cluster.namespace
        count = self.spec.runners
        results: dict[int, RunnerResult] = {}
        try:
            pods = run.cluster_api.pods(ns, "runner", self._name())
        except Exception:  # the cluster went away: report what we have (nothing)
            pods = []
        for pod in pods:
            try:
                text = run.cluster_api.log(ns, pod.name)
            except Exception:
                continue
            out = self.out_dir / "runners" / str(pod.index)
            out.mkdir(parents=True, exist_ok=True)
            (out / "pod.log").write_text(text, encoding="utf-8")
            taken = result_in_log(text, pod.index, count)
            if taken is None:
                continue
            result, whole = taken
            if whole:
                result.write(out / "result.json")
            results[pod.index] = result
        for index in range(count):
            if index not in results:
                results[index] = RunnerResult.missing(
                    index,
                    count,
                    segment(index, count),
                    RunnerStatus.STOPPED
                    if outcome.failure or outcome.aborted_by
                    else RunnerStatus.ERROR,
                    "no result in the pod's log",
                )
        return [results[i] for i in sorted(results)]


def start_budget_s(options: KubernetesOptions, spec: FleetSpec) -> float:
    """How long a fleet may take from its creation to the coordinator's release: its pods
    Pending (scheduling, image pulls) up to the pending deadline, the runners ready within
    the ready timeout, setup() within its own, and the release."""
    return (
        options.pending_deadline_s + options.ready_timeout_s + spec.setup_timeout_s + START_SLACK_S
    )


def fleet_name(number: int) -> str:
    """The name of a run's ``number``-th fleet: ``stressbed-runners``, then
    ``stressbed-runners-2``, ... (its Jobs are ``<name>`` and ``<name>-coordinator``)."""
    return FLEET_NAME if number <= 1 else f"{FLEET_NAME}-{number}"


class KubernetesBackend(Backend):
    """``--backend kubernetes``: Pulumi for the stack and the fleet, the Kubernetes API to
    follow them. ``engine`` and ``cluster_api`` default to the real ones."""

    name = "kubernetes"
    # The runners load the stack this backend provisions; the coordinator follows them live;
    # fleet after fleet replaces the last one in the run's stack (a capacity search's probes).
    capabilities = frozenset(
        {
            Capability.PROVISION,
            Capability.LIVE_ABORT,
            Capability.LIVE_PROGRESS,
            Capability.REPEATED_FLEETS,
        }
    )
    #: Chaos Mesh objects (docs/backends/kubernetes.md names the version), the target's fault
    #: hook, the Deployment's own rollout for a rolling restart, and a Job in a namespace of
    #: its own, beside the agent pods, for a neighbour.
    fault_kinds = CHAOS_FAULT_KINDS
    fault_refusals: ClassVar[Mapping[str, str]] = {
        # Chaos Mesh's disk fill is for physical machines (chaosd), not pods: still true.
        "disk_fill": "no Chaos Mesh object of stressbed's fills a pod's disk yet (--backend "
        "local fills a tmpfs of the stack's own)",
        # StressChaos runs stress-ng in the target's cgroup and PID namespace only (chaos-
        # daemon's nsexec is given no mount namespace), and drops stressngStressors (2.8.3).
        "io": "Chaos Mesh's StressChaos starts stress-ng in the pod's cgroup but not in its "
        "mount namespace, so an IO hog would write chaos-daemon's disk, not the replica's, and "
        "a pod has no IO limits to hold it (--backend local runs it against the stack's own)",
    }
    option_keys = (
        "kubeconfig",
        "context",
        "agent_image",
        "runner_image",
        "image_pull_policy",
        "runner_cpu",
        "runner_memory",
        "control_plane_cidrs",
    )

    def __init__(
        self,
        options: KubernetesOptions | None = None,
        *,
        engine: EngineFactory | None = None,
        cluster_api: Callable[[ClusterAccess], ClusterApi] | None = None,
    ) -> None:
        self.options = options or KubernetesOptions()
        self._engine = engine or automation_engine(self.options)
        self._cluster_api = cluster_api or kubernetes_api
        self._run: RunState | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> KubernetesBackend:
        return cls(KubernetesOptions.of(options))

    def check_fault(self, fault: Fault) -> None:
        if fault.kind == "slow_disk" and fault.param("delay_ms") is None:
            raise ConfigError(
                f"faults.{fault.name}.rate",
                fault.label,
                "a latency with --backend kubernetes, like fault.slow_disk(latency='50ms'): "
                "Chaos Mesh's IOChaos delays each operation, it has no bandwidth to throttle "
                "(--backend local applies a rate)",
            )

    def preflight(self, stack: StackSpec | None, scenario: Scenario | None = None) -> None:
        # No Pulumi CLI, kubeconfig or context; or what the API server would refuse at apply
        # time: one line, exit 2, nothing created.
        preflight(self.options)
        if stack is not None:
            check_stack(stack, self.options.agent_image, self.options.runner_resources())
        if scenario is not None:
            check_bundle(scenario)
        if scenario is not None and any(f.kind in NEEDS_CHAOS_MESH for f in scenario.faults):
            access = preflight(self.options)
            missing = self._cluster_api(access).missing_chaos_kinds(list(PLURALS.values()))
            if missing:
                names = ", ".join(f"{m}.{CHAOS_GROUP}" for m in missing)
                raise ConfigError(
                    "faults",
                    f"no {names} in context {access.context}",
                    f"Chaos Mesh {CHAOS_MESH_VERSION} installed in the cluster (its CRDs and "
                    "controller), for the scenario's faults",
                )

    def stack(
        self,
        spec: StackSpec,
        work_dir: Path,
        on_event: EventSink | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> KubeStack:
        access = preflight(self.options)
        run_id = work_dir.parent.name or _secrets.token_hex(3)
        cluster = Cluster(
            namespace=_namespace(self.options.namespace_prefix, run_id),
            image_pull_policy=self.options.image_pull_policy,
            run_id=run_id,
            control_plane_cidrs=self.options.control_plane_cidrs,
        )
        if self.options.agent_image:
            spec = replace(spec, target=replace(spec.target, image=self.options.agent_image))
        self._run = RunState(
            spec=spec,
            cluster=cluster,
            access=access,
            engine=self._engine(cluster.namespace, work_dir, access),
            cluster_api=self._cluster_api(access),
            options=self.options,
            # The fault hook's token, made for the run: in the agent's Secret, never the fleet's.
            secret_values={
                **dict(secrets or {}),
                **(
                    {spec.fault_hook.token_env: _secrets.token_urlsafe(24)}
                    if spec.fault_hook
                    else {}
                ),
            },
            work_dir=work_dir,
            state_dir=state_dir(self.options, cluster.namespace),
        )
        return KubeStack(self._run, on_event)

    def fleet(
        self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]
    ) -> KubeFleet:
        if self._run is None:  # no EXISTING_TARGET capability: the plan refuses --target-url
            raise ProvisionError("the kubernetes backend runs its fleet against its own stack")
        return KubeFleet(self._run, bundle, out_dir, spec, env)


def _namespace(prefix: str, run_id: str) -> str:
    text = f"{prefix}-{run_id}".lower()
    cleaned = "".join(c if c.isalnum() or c == "-" else "-" for c in text)[:63].strip("-")
    return cleaned or prefix
