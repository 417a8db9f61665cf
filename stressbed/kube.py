"""The Kubernetes backend: an ephemeral Pulumi stack per run, through the Automation API.

    preflight (exit 2: no pulumi CLI, no kubeconfig, no such context; nothing created)
    provision: select the stack -> up (AgentStack; Pulumi waits for the agent to be ready)
    fleet:     up again with the RunnerFleet -> follow the runner pods -> collect each
               runner's result document from its log -> the same merge as the local fleet
    teardown:  destroy, then remove the stack, always (failure, Ctrl-C, SIGTERM)

The engine and the cluster sit behind two small seams, :class:`Engine` (the Automation API)
and :class:`ClusterApi` (the Kubernetes API), so the orchestration is tested without either.
Runner failures end the run naming the runner: OOMKilled, evicted, an image that cannot be
pulled, Pending past a deadline, a failed pod; nothing waits past the run's deadline.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from .collect import Aggregate
from .errors import ConfigError, ProvisionError
from .fleet import FleetOutcome, FleetSpec, Progress
from .k8s import Cluster, ClusterFleet
from .render import bundle_files
from .result import RunnerResult, RunnerStatus
from .stack import StackSpec
from .thresholds import Threshold

__all__ = [
    "ClusterApi",
    "Engine",
    "KubernetesBackend",
    "KubernetesOptions",
    "PodState",
    "preflight",
    "runner_failure",
]

POLL_S = 2.0
MAX_API_ERRORS = 5
IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


@dataclass(frozen=True)
class KubernetesOptions:
    kubeconfig: Path | None = None  # default: $KUBECONFIG, else ~/.kube/config
    context: str | None = None  # default: the kubeconfig's current context
    state: str | None = None  # Pulumi state backend URL; default: file:// in the run's dir
    agent_image: str | None = None  # default: the StackSpec's target.image
    runner_image: str = "stressbed-runner:latest"
    image_pull_policy: str = "IfNotPresent"
    pending_deadline_s: float = 300.0  # a runner Pending longer than this fails the run
    namespace_prefix: str = "stressbed"


@dataclass(frozen=True)
class Target:
    """Where the preflight found the cluster."""

    kubeconfig: Path
    context: str


def preflight(
    options: KubernetesOptions, env: Mapping[str, str] | None = None, *, engine: bool = True
) -> Target:
    """Everything the backend needs, checked before anything is created (ConfigError, exit 2).
    ``engine=False``: only the cluster (``stressbed collect`` needs no Pulumi)."""
    env = os.environ if env is None else env
    if engine and shutil.which("pulumi", path=env.get("PATH")) is None:
        raise ConfigError(
            "--backend kubernetes",
            "no pulumi CLI on PATH",
            "the Pulumi CLI (curl -fsSL https://get.pulumi.com | sh, then open a new shell)",
        )
    try:
        import kubernetes  # noqa: F401, PLC0415
        import pulumi  # noqa: F401, PLC0415
        import pulumi_kubernetes  # noqa: F401, PLC0415
    except ImportError as exc:
        raise ConfigError(
            "--backend kubernetes",
            f"missing Python package {exc.name}",
            "pip install 'stressbed[kubernetes]'",
        ) from None
    path = options.kubeconfig
    if path is None:
        first = (env.get("KUBECONFIG") or "").split(os.pathsep)[0]
        path = Path(first) if first else Path(env.get("HOME", "~")).expanduser() / ".kube/config"
    if not path.is_file():
        raise ConfigError("--kubeconfig", str(path), "an existing kubeconfig file")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        raise ConfigError("--kubeconfig", str(path), "a readable kubeconfig (YAML)") from None
    names = [str(c.get("name")) for c in config.get("contexts") or [] if isinstance(c, dict)]
    context = options.context or config.get("current-context")
    if not context:
        raise ConfigError("--context", None, f"a context of {path}: {', '.join(names) or 'none'}")
    if context not in names:
        raise ConfigError(
            "--context", context, f"a context of {path}: {', '.join(names) or 'none'}"
        )
    return Target(path, context)


# -- the seams ---------------------------------------------------------------------------------


class Engine(Protocol):
    """What the backend asks of Pulumi for one stack (the Automation API behind it)."""

    def up(self, program: Callable[[], None]) -> None: ...

    def destroy(self) -> None: ...

    def remove(self) -> None: ...


@dataclass
class PodState:
    """What the backend reads of one pod."""

    name: str
    index: int  # the Job's completion index; -1 for the coordinator
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    created: float  # unix time
    reason: str = ""  # pod-level reason (Evicted)
    message: str = ""
    waiting: str = ""  # a container's waiting reason (ImagePullBackOff, ...)
    terminated: str = ""  # a container's terminated reason (OOMKilled, Error, Completed)
    exit_code: int | None = None
    unschedulable: str = ""  # the PodScheduled condition's message when it is False


class ClusterApi(Protocol):
    def pods(self, namespace: str, component: str) -> list[PodState]: ...

    def log(self, namespace: str, pod: str) -> str: ...


def runner_failure(pod: PodState, now: float, pending_deadline_s: float) -> str | None:
    """Why this pod fails the run, or None while it is fine."""
    who = "coordinator" if pod.index < 0 else f"runner {pod.index}"
    if pod.reason == "Evicted":
        return f"{who}: evicted ({pod.message or 'no message'})"
    if pod.terminated == "OOMKilled":
        return f"{who}: OOMKilled (raise the runner's memory limit or lower the VUs per runner)"
    if pod.waiting in IMAGE_ERRORS:
        return f"{who}: image pull failed ({pod.waiting}: {pod.message or 'no message'})"
    if pod.waiting in CONFIG_ERRORS:
        return f"{who}: container not created ({pod.waiting}: {pod.message or 'no message'})"
    if pod.phase == "Failed":
        code = f" with exit code {pod.exit_code}" if pod.exit_code is not None else ""
        return f"{who}: failed{code} ({pod.terminated or pod.reason or 'no reason given'})"
    if pod.phase == "Pending" and now - pod.created > pending_deadline_s:
        detail = f": {pod.unschedulable}" if pod.unschedulable else ""
        return f"{who}: still Pending after {pending_deadline_s:g} s{detail}"
    return None


# -- the backend -----------------------------------------------------------------------------


@dataclass
class _Run:
    """One run's state, shared by its stack and its fleet."""

    spec: StackSpec
    cluster: Cluster
    target: Target
    engine: Engine
    cluster_api: ClusterApi
    options: KubernetesOptions
    secret_values: dict[str, str]
    work_dir: Path = Path()
    events: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    fleet: ClusterFleet | None = None
    created: bool = False

    def event(self, kind: str, **fields: Any) -> None:
        self.events.append({"t": round(time.time(), 3), "source": "stack", "event": kind, **fields})

    def program(self) -> None:
        """The Pulumi program of this run: the agent stack, and the fleet once it is known."""
        import pulumi  # noqa: PLC0415 - only with the kubernetes extra
        import pulumi_kubernetes as k8s  # noqa: PLC0415

        from .infra import AgentStack, AgentStackArgs, RunnerFleet, RunnerFleetArgs  # noqa: PLC0415

        provider = k8s.Provider(
            "cluster",
            kubeconfig=self.target.kubeconfig.read_text(encoding="utf-8"),
            context=self.target.context,
        )
        opts = pulumi.ResourceOptions(providers=[provider])
        agent = AgentStack(
            "agent",
            AgentStackArgs(self.spec, self.cluster, self.fleet, self.secret_values),
            opts,
        )
        if self.fleet is not None:
            RunnerFleet(
                "fleet",
                RunnerFleetArgs(self.fleet, self.url, self.cluster, self.secret_values, [agent]),
                opts,
            )


class KubeStack:
    """The Stack side of a Kubernetes run (see :class:`stressbed.backend.Stack`)."""

    def __init__(self, run: _Run) -> None:
        self.state = run
        self.url = ""
        self.events = run.events

    def provision(self) -> str:
        run = self.state
        run.event("stack-creating", namespace=run.cluster.namespace, context=run.target.context)
        run.created = True  # from here on, teardown destroys whatever up got to
        try:
            run.engine.up(run.program)
        except Exception as exc:
            raise ProvisionError(f"pulumi up failed: {_last_line(exc)}") from exc
        target = run.spec.target
        run.url = f"http://{target.name}.{run.cluster.namespace}.svc:{target.port}"
        self.url = run.url
        run.event("stack-ready", url=run.url, namespace=run.cluster.namespace)
        return run.url

    def teardown(self) -> None:
        """Destroy, then remove the stack. A destroy that fails keeps the stack, so that
        ``pulumi destroy`` can finish the job, and says how (ProvisionError, exit 3)."""
        run = self.state
        if not run.created:
            return
        try:
            run.engine.destroy()
        except Exception as exc:
            run.event("destroy-failed", reason=_last_line(exc))
            run.created = False
            state = (run.work_dir / "pulumi-state").resolve()
            passphrase = (run.work_dir / "pulumi-passphrase").resolve()
            raise ProvisionError(
                f"pulumi destroy failed: {_last_line(exc)}; the stack "
                f"{run.cluster.namespace!r} is kept: finish with `PULUMI_BACKEND_URL=file://"
                f"{state} PULUMI_CONFIG_PASSPHRASE_FILE={passphrase} KUBECONFIG="
                f"{run.target.kubeconfig} pulumi destroy --stack {run.cluster.namespace} "
                f"--yes` (then `pulumi stack rm {run.cluster.namespace}`)"
            ) from exc
        run.event("stack-destroyed", namespace=run.cluster.namespace)
        run.engine.remove()
        run.event("stack-removed")
        run.created = False

    def report(self) -> dict[str, Any]:
        return {
            "backend": "kubernetes",
            "url": self.state.url,
            "namespace": self.state.cluster.namespace,
            "context": self.state.target.context,
            "enforcement": "kubernetes (kubelet, cgroups on the nodes)",
        }


class KubeFleet:
    """The Fleet side: the runners as an Indexed Job, followed until they finish."""

    def __init__(self, run: _Run, bundle: Path, out_dir: Path, spec: FleetSpec) -> None:
        self.state = run
        self.bundle = bundle
        self.out_dir = out_dir
        self.spec = spec

    def run(
        self,
        deadline_s: float,
        abort_thresholds: Sequence[Threshold] = (),
        judge: Callable[[Threshold, dict[str, Aggregate], float], bool] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> FleetOutcome:
        run = self.state
        outcome = FleetOutcome(results=[], events=run.events)
        run.fleet = ClusterFleet(
            runners=self.spec.runners,
            bundle=bundle_files(self.bundle),
            image=run.options.runner_image,
            deadline_s=int(deadline_s) + 60,
            secret_env=run.spec.target.secret_env,
        )
        try:
            try:
                run.engine.up(run.program)
            except Exception as exc:
                outcome.failure = f"pulumi up of the fleet failed: {_last_line(exc)}"
                return outcome
            run.event("fleet-created", runners=self.spec.runners)
            self._follow(outcome, deadline_s)
        except KeyboardInterrupt:
            outcome.interrupted = True
            run.event("interrupted")
        outcome.results = self._collect(outcome)
        return outcome

    def _follow(self, outcome: FleetOutcome, deadline_s: float) -> None:
        run = self.state
        ns = run.cluster.namespace
        started = time.monotonic()
        last = ""
        api_errors = 0
        while True:
            now = time.time()
            try:
                pods = run.cluster_api.pods(ns, "runner") + run.cluster_api.pods(ns, "coordinator")
                api_errors = 0
            except Exception as exc:  # a blip of the API server is retried, a few times
                api_errors += 1
                if api_errors >= MAX_API_ERRORS:
                    outcome.failure = f"the Kubernetes API did not answer: {_last_line(exc)}"
                    run.event("api-failed", reason=outcome.failure)
                    return
                time.sleep(POLL_S)
                continue
            if not [p for p in pods if p.index >= 0] and (
                time.monotonic() - started > run.options.pending_deadline_s
            ):
                assert run.fleet is not None  # set in run() before the fleet's up
                name = run.fleet.name
                outcome.failure = (
                    f"no runner pod was created within {run.options.pending_deadline_s:g} s "
                    f"(see `kubectl -n {ns} describe job {name}`: quota, LimitRange or Pod "
                    "Security may have refused them)"
                )
                run.event("runner-failed", reason=outcome.failure)
                return
            for pod in pods:
                failure = runner_failure(pod, now, run.options.pending_deadline_s)
                if failure is not None and pod.index < 0:
                    failure += _coordinator_reason(run, pod)
                if failure is not None:
                    outcome.failure = failure
                    run.event("runner-failed", pod=pod.name, reason=failure)
                    return
            runners = [p for p in pods if p.index >= 0]
            if len(runners) >= self.spec.runners and all(p.phase == "Succeeded" for p in runners):
                run.event("fleet-finished", runners=len(runners))
                return
            elapsed = time.monotonic() - started
            if elapsed > deadline_s:
                outcome.timed_out = True
                run.event("deadline", seconds=round(deadline_s, 1))
                return
            # Runners report in their logs at the end; until then the pods' phases are the news.
            phases = ",".join(sorted(p.phase for p in runners))
            if phases != last:
                last = phases
                run.event("runners", phases={p.name: p.phase for p in runners})
            time.sleep(POLL_S)

    def _collect(self, outcome: FleetOutcome) -> list[RunnerResult]:
        """Each runner's result document, from the last line of its pod's log."""
        run = self.state
        ns = run.cluster.namespace
        results: dict[int, RunnerResult] = {}
        try:
            pods = run.cluster_api.pods(ns, "runner")
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
            document = _result_line(text)
            if document is not None:
                result = RunnerResult.from_dict(document)
                result.write(out / "result.json")
                results[pod.index] = result
        for index in range(self.spec.runners):
            if index not in results:
                results[index] = RunnerResult.missing(
                    index,
                    self.spec.runners,
                    RunnerStatus.STOPPED if outcome.failure else RunnerStatus.ERROR,
                    "no result in the pod's log",
                )
        return [results[i] for i in sorted(results)]


def _coordinator_reason(run: _Run, pod: PodState) -> str:
    """What the coordinator said last (``{"event": "failed", "reason": ...}``), if anything."""
    try:
        text = run.cluster_api.log(run.cluster.namespace, pod.name)
    except Exception:
        return ""
    for line in reversed(text.splitlines()):
        try:
            said = json.loads(line)
        except ValueError:
            continue
        if isinstance(said, dict) and said.get("event") == "failed":
            return f": {said.get('reason')}"
    return ""


def _result_line(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        if '"event": "result"' in line:
            try:
                document: dict[str, Any] = json.loads(line)["document"]
            except (ValueError, KeyError):
                return None
            return document
    return None


def _last_line(exc: BaseException) -> str:
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return lines[-1] if lines else type(exc).__name__


class KubernetesBackend:
    """``--backend kubernetes``: Pulumi for the stack and the fleet, the Kubernetes API to
    follow them. ``engine`` and ``cluster_api`` default to the real ones."""

    name = "kubernetes"

    def __init__(
        self,
        options: KubernetesOptions | None = None,
        *,
        engine: Callable[[str, Path, Target], Engine] | None = None,
        cluster_api: Callable[[Target], ClusterApi] | None = None,
    ) -> None:
        self.options = options or KubernetesOptions()
        self._engine = engine or automation_engine(self.options)
        self._cluster_api = cluster_api or kubernetes_api
        self._run: _Run | None = None

    def stack(
        self,
        spec: StackSpec,
        work_dir: Path,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> KubeStack:
        target = preflight(self.options)
        from dataclasses import replace  # noqa: PLC0415

        run_id = work_dir.parent.name or _secrets.token_hex(3)
        cluster = Cluster(
            namespace=_namespace(self.options.namespace_prefix, run_id),
            image_pull_policy=self.options.image_pull_policy,
            run_id=run_id,
        )
        if self.options.agent_image:
            spec = replace(spec, target=replace(spec.target, image=self.options.agent_image))
        self._run = _Run(
            spec=spec,
            cluster=cluster,
            target=target,
            engine=self._engine(cluster.namespace, work_dir, target),
            cluster_api=self._cluster_api(target),
            options=self.options,
            secret_values=dict(secrets or {}),
            work_dir=work_dir,
        )
        return KubeStack(self._run)

    def fleet(
        self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]
    ) -> KubeFleet:
        assert self._run is not None, "the stack comes first"
        return KubeFleet(self._run, bundle, out_dir, spec)


def _namespace(prefix: str, run_id: str) -> str:
    text = f"{prefix}-{run_id}".lower()
    cleaned = "".join(c if c.isalnum() or c == "-" else "-" for c in text)[:63].strip("-")
    return cleaned or prefix


# -- the real seams ------------------------------------------------------------------------


class _AutomationEngine:
    """One ephemeral stack through Pulumi's Automation API, state in a file backend."""

    def __init__(self, name: str, work_dir: Path, target: Target, state: str | None) -> None:
        from pulumi import automation as auto  # noqa: PLC0415

        self._auto = auto
        self.name = name
        state_url = state or f"file://{(work_dir / 'pulumi-state').resolve()}"
        if state_url.startswith("file://"):
            Path(state_url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        self.options = auto.LocalWorkspaceOptions(
            project_settings=auto.ProjectSettings(
                name="stressbed",
                runtime="python",
                backend=auto.ProjectBackend(url=state_url),
            ),
            # The stack lives for one run: a passphrase of its own encrypts its secrets. It is
            # kept beside the state (mode 0600) so that a destroy that failed can be finished.
            env_vars={
                "PULUMI_CONFIG_PASSPHRASE_FILE": str(_passphrase_file(work_dir)),
                "KUBECONFIG": str(target.kubeconfig),
            },
        )
        self.stack: Any = None
        self.log = work_dir / "pulumi.log"

    def _select(self, program: Callable[[], None]) -> Any:
        if self.stack is None:
            self.stack = self._auto.create_or_select_stack(
                stack_name=self.name, project_name="stressbed", program=program, opts=self.options
            )
        else:
            self.stack.workspace.program = program
        return self.stack

    def _out(self, text: str) -> None:
        with self.log.open("a", encoding="utf-8") as out:
            out.write(text + "\n")

    def up(self, program: Callable[[], None]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._select(program).up(on_output=self._out, color="never")

    def destroy(self) -> None:
        if self.stack is not None:
            self.stack.destroy(on_output=self._out, color="never")

    def remove(self) -> None:
        if self.stack is not None:
            self.stack.workspace.remove_stack(self.name)


def _passphrase_file(work_dir: Path) -> Path:
    path = work_dir / "pulumi-passphrase"
    work_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(_secrets.token_urlsafe(32))
    return path


def automation_engine(options: KubernetesOptions) -> Callable[[str, Path, Target], Engine]:
    def make(name: str, work_dir: Path, target: Target) -> Engine:
        return _AutomationEngine(name, work_dir, target, options.state)

    return make


class _KubernetesApi:
    def __init__(self, target: Target) -> None:
        from kubernetes import client, config  # noqa: PLC0415

        api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(target.kubeconfig), context=target.context
        )
        self.core = client.CoreV1Api(api_client)

    def pods(self, namespace: str, component: str) -> list[PodState]:
        found = self.core.list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/component={component}"
        )
        return [_pod_state(p) for p in found.items]

    def log(self, namespace: str, pod: str) -> str:
        # Raw bytes: older clients try to parse a one-line JSON log and hand back a repr.
        response: Any = self.core.read_namespaced_pod_log(pod, namespace, _preload_content=False)
        return bytes(response.data).decode("utf-8", errors="replace")


def kubernetes_api(target: Target) -> ClusterApi:
    return _KubernetesApi(target)


def _pod_state(pod: Any) -> PodState:
    annotations = pod.metadata.annotations or {}
    index = annotations.get("batch.kubernetes.io/job-completion-index")
    state = PodState(
        name=pod.metadata.name,
        index=int(index) if index is not None else -1,
        phase=pod.status.phase or "Unknown",
        created=pod.metadata.creation_timestamp.timestamp(),
        reason=pod.status.reason or "",
        message=pod.status.message or "",
    )
    for status in pod.status.container_statuses or []:
        if status.state.waiting is not None:
            state.waiting = status.state.waiting.reason or ""
            state.message = status.state.waiting.message or state.message
        if status.state.terminated is not None:
            state.terminated = status.state.terminated.reason or ""
            state.exit_code = status.state.terminated.exit_code
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            state.unschedulable = condition.message or condition.reason or ""
    return state


def collect(
    namespace: str,
    job: str,
    scenario: str,
    results: Path,
    *,
    api: ClusterApi,
) -> Any:
    """``stressbed collect``: a fleet started by hand (``pulumi up`` + ``startCommand``) read
    back from its runners' logs, merged and judged like any run; returns the RunReport."""
    from .backend import ExistingService  # noqa: PLC0415
    from .run import RunOptions, write_collected  # noqa: PLC0415

    pods = [p for p in api.pods(namespace, "runner") if p.name.startswith(f"{job}-")]
    if not pods:
        raise ConfigError("--job", job, f"a runner Job with pods in namespace {namespace!r}")
    unfinished = [p for p in pods if p.phase not in ("Succeeded", "Failed")]
    if unfinished:
        raise ConfigError(
            "--job",
            job,
            f"a finished fleet: runner {unfinished[0].index} is still {unfinished[0].phase}",
        )
    found: list[RunnerResult] = []
    for pod in sorted(pods, key=lambda p: p.index):
        document = _result_line(api.log(namespace, pod.name))
        if document is not None:
            found.append(RunnerResult.from_dict(document))
        else:
            found.append(
                RunnerResult.missing(
                    pod.index,
                    len(pods),
                    RunnerStatus.ERROR,
                    runner_failure(pod, time.time(), float("inf")) or "no result in the pod's log",
                    exit_code=pod.exit_code if pod.exit_code is not None else -1,
                )
            )
    options = RunOptions(scenario=scenario, runners=len(found), results=results)
    return write_collected(options, found, ExistingService(f"namespace {namespace}"))
