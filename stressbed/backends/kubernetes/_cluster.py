"""The cluster seam: what the Kubernetes backend reads of the runner pods, and how their
results come back (the last line of each runner's log is its result document).

:class:`ClusterApi` is the seam the tests fake; :func:`kubernetes_api` is the real one, on the
official client (what reaches outside the run's namespace is :mod:`._namespaces`).
:func:`runner_failure` says why a pod fails a run, :func:`fleet_results` reads a finished
fleet back (``stressbed collect``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import ConfigError, DocumentError
from ...fleet.segments import segment
from ...results.runner_result import RunnerResult, RunnerStatus
from ...results.transport import read_document
from ...scenario.thresholds import Threshold
from ...scenario.units import parse_size
from ._namespaces import NamespaceApi, NamespaceCalls
from ._preflight import ClusterAccess
from .chaos import CHAOS_GROUP, CHAOS_VERSION

__all__ = [
    "ClusterApi",
    "ClusterEvent",
    "PodState",
    "ProxyUnreachable",
    "RolloutState",
    "ScaleState",
    "coordinator_reason",
    "fleet_abort",
    "fleet_results",
    "kubernetes_api",
    "result_in_log",
    "runner_failure",
    "usage_cpu_m",
    "usage_mib",
]

_USAGE_CPU = re.compile(r"(\d+(?:\.\d+)?)(n|u|m)?")
_USAGE_CPU_UNITS = {"n": 1e-6, "u": 1e-3, "m": 1.0, None: 1000.0}
#: A call to an agent pod's fault hook waits at most this long.
HOOK_TIMEOUT_S = 5.0
#: What the API server answers when its pod proxy could not dial the pod: apimachinery's
#: proxy transport says "error trying to reach service: dial tcp ...: connect: connection
#: refused" (or "i/o timeout") with a 503; a tunnel to the nodes (Konnectivity, k3s) says
#: "proxy error from ... while dialing ..." (a 502 inside it).
UNREACHABLE_SAID = ("error trying to reach service", "proxy error from")
IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


class ProxyUnreachable(Exception):
    """The API server's pod proxy did not reach the pod: the API server's own 503 (or a
    tunnel's 502) for a dial that failed, or no answer in time. On a CNI that enforces the
    agent's NetworkPolicy, most often the policy holding back the control plane."""


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
    ready: bool = False  # the Ready condition
    restarts: int = 0  # its containers' restarts, summed
    last_terminated: str = ""  # why a container last ended before its restart (OOMKilled, ...)
    node: str = ""  # the node it was scheduled to
    started: float | None = None  # when the last of its containers started running, if all do


@dataclass
class ScaleState:
    """The agent Deployment's pods and the count its autoscaler wants."""

    replicas: int  # pods the Deployment counts (status.replicas)
    ready: int  # of them ready (status.readyReplicas)
    desired: int  # the HPA's status.desiredReplicas, or the Deployment's spec.replicas


@dataclass
class RolloutState:
    """The agent Deployment as a rollout is followed (what ``kubectl rollout status`` reads)."""

    generation: int  # metadata.generation
    observed_generation: int  # status.observedGeneration: the controller has seen up to it
    replicas: int  # spec.replicas
    current: int  # status.replicas: its pods of every revision
    updated: int  # status.updatedReplicas: of the newest revision
    ready: int  # status.readyReplicas
    available: int  # status.availableReplicas
    strategy: dict[str, Any]  # spec.strategy, as the API server has it
    paused: bool = False


@dataclass
class ClusterEvent:
    """A Warning event of the namespace (the API server folds repeats into ``count``)."""

    uid: str
    reason: str  # FailedCreate, Unhealthy, ...
    message: str
    involved: str  # the object's name
    count: int
    last: float  # unix time it was last seen


class ClusterApi(NamespaceApi, Protocol):
    """Namespaces and Jobs outside the run's stack: :class:`~._namespaces.NamespaceApi`."""

    def pods(self, namespace: str, component: str, name: str | None = None) -> list[PodState]:
        """The pods of one component (``app.kubernetes.io/component``), and of one fleet or
        workload (``app.kubernetes.io/name``) when ``name`` is given."""
        ...

    def log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
        """The pod's log (its last ``tail_lines`` lines when given)."""
        ...

    def proxy(self, namespace: str, pod: str, port: int, path: str, timeout: float) -> str:
        """GET ``path`` on the pod's ``port`` through the API server's pod proxy (what the
        target's metrics are scraped by: no port of the cluster is opened for it).
        ProxyUnreachable when the proxy did not reach the pod."""
        ...

    def scale(self, namespace: str, name: str, *, autoscaled: bool) -> ScaleState:
        """Deployment ``name``'s replicas, and its HorizontalPodAutoscaler's (of the same
        name) desired count when ``autoscaled``."""
        ...

    def rollout(self, namespace: str, name: str) -> RolloutState:
        """Deployment ``name`` as its rollout stands."""
        ...

    def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> int:
        """A strategic merge patch of Deployment ``name`` (as ``kubectl rollout restart``
        sends one); its generation after it."""
        ...

    def pod_usage(
        self, namespace: str, component: str, name: str
    ) -> dict[str, tuple[float, float]]:
        """Each pod's CPU (millicores) and memory (MiB) from metrics.k8s.io; raises where no
        metrics-server serves it."""
        ...

    def warnings(self, namespace: str) -> list[ClusterEvent]:
        """The namespace's Warning events."""
        ...

    def create_chaos(self, namespace: str, plural: str, body: dict[str, Any]) -> None:
        """Create a Chaos Mesh object (``chaos-mesh.org/v1alpha1``, ``plural``)."""
        ...

    def get_chaos(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        """The object as the API server has it (its status included); None once gone."""
        ...

    def delete_chaos(self, namespace: str, plural: str, name: str) -> None:
        """Delete it (Chaos Mesh's finalizer recovers what it did first); gone is fine."""
        ...

    def hook(
        self,
        namespace: str,
        pod: str,
        port: int,
        request: tuple[str, str, dict[str, Any] | None],
        headers: dict[str, str],
    ) -> str | None:
        """``request`` (method, path, JSON body) to the pod's ``port`` through the API server's
        pod proxy: None when the pod answered 2xx, else why not, in a few words.
        ProxyUnreachable when the proxy did not reach the pod."""
        ...

    def missing_chaos_kinds(self, plurals: Sequence[str]) -> list[str]:
        """Those of ``plurals`` the API server does not serve in chaos-mesh.org/v1alpha1 (by
        API discovery, which any authenticated user may read: no CRD read needed)."""
        ...


def usage_cpu_m(text: str) -> float:
    """Millicores from a metrics.k8s.io CPU usage (``"12345678n"``, ``"250m"``, ``"1"``)."""
    match = _USAGE_CPU.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a CPU usage: {text!r}")
    return float(match.group(1)) * _USAGE_CPU_UNITS[match.group(2)]


def usage_mib(text: str) -> float:
    """MiB from a metrics.k8s.io memory usage (``"52344Ki"``, ``"128Mi"``, bytes)."""
    try:
        return parse_size(text.strip(), "memory usage") / 2**20
    except ConfigError:
        raise ValueError(f"not a memory usage: {text!r}") from None


def runner_failure(
    pod: PodState, now: float, pending_deadline_s: float, runner_memory: str = "1Gi"
) -> str | None:
    """Why this pod fails the run, or None while it is fine (``runner_memory``: the runners'
    memory limit, for the advice on an OOM kill)."""
    who = "coordinator" if pod.index < 0 else f"runner {pod.index}"
    if pod.reason == "Evicted":
        return f"{who}: evicted ({pod.message or 'no message'})"
    if pod.terminated == "OOMKilled":
        if pod.index < 0:
            return f"{who}: OOMKilled"
        return (
            f"{who}: OOMKilled (raise --runner-memory, now {runner_memory}, or lower the VUs "
            "per runner)"
        )
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


def result_in_log(text: str, index: int, count: int) -> tuple[RunnerResult, bool] | None:
    """Runner ``index``'s result from its pod's log, and whether it was read whole; None when
    the log holds none. A result that is there but cannot be read (cut, altered, another
    version) is that runner's error."""
    try:
        document = read_document(text)
        return (RunnerResult.from_dict(document), True) if document is not None else None
    except DocumentError as exc:
        reason = f"its result cannot be read: {exc}"
        missing = RunnerResult.missing(
            index, count, segment(index, count), RunnerStatus.ERROR, reason
        )
        return missing, False


def coordinator_reason(api: ClusterApi, namespace: str, pod: PodState) -> str:
    """What the coordinator said last (``{"event": "failed", "reason": ...}``), if anything."""
    try:
        text = api.log(namespace, pod.name)
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


def fleet_abort(
    api: ClusterApi, namespace: str, job: str, thresholds: Sequence[Threshold]
) -> Threshold | None:
    """The threshold the coordinator of runner Job ``job`` aborted the fleet on (read from
    its whole log), if it did and the threshold is one of ``thresholds``."""
    for pod in api.pods(namespace, "coordinator", job):
        try:
            text = api.log(namespace, pod.name)
        except Exception:
            continue
        for line in text.splitlines():
            try:
                said = json.loads(line)
            except ValueError:
                continue
            if not isinstance(said, dict) or said.get("event") != "aborted":
                continue
            for threshold in thresholds:
                if (threshold.key, threshold.expression) == (
                    said.get("threshold"),
                    said.get("expression"),
                ):
                    return threshold
    return None


def fleet_results(api: ClusterApi, namespace: str, job: str) -> list[RunnerResult]:
    """The results of a finished runner Job, read from its pods' logs (one per runner; a pod
    without a document gets an error result saying why). ConfigError (exit 2) when the Job
    has no pods or is still running."""
    pods = api.pods(namespace, "runner", job)
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
        taken = result_in_log(api.log(namespace, pod.name), pod.index, len(pods))
        if taken is not None:
            found.append(taken[0])
        else:
            found.append(
                RunnerResult.missing(
                    pod.index,
                    len(pods),
                    segment(pod.index, len(pods)),
                    RunnerStatus.ERROR,
                    runner_failure(pod, time.time(), float("inf")) or "no result in the pod's log",
                    exit_code=pod.exit_code if pod.exit_code is not None else -1,
                )
            )
    return found


class _KubernetesApi(NamespaceCalls):
    def __init__(self, access: ClusterAccess) -> None:
        from kubernetes import client, config  # noqa: PLC0415 - only with the kubernetes extra

        # Every file of $KUBECONFIG's list: the client's KubeConfigMerger splits the list on
        # the path separator and merges them as kubectl does.
        api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=access.path_list, context=access.context
        )
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.autoscaling = client.AutoscalingV2Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.batch = client.BatchV1Api(api_client)

    def pods(self, namespace: str, component: str, name: str | None = None) -> list[PodState]:
        selector = f"app.kubernetes.io/component={component}"
        if name is not None:
            selector += f",app.kubernetes.io/name={name}"
        found = self.core.list_namespaced_pod(namespace, label_selector=selector)
        return [_pod_state(p) for p in found.items]

    def log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
        # Raw bytes: older clients try to parse a one-line JSON log and hand back a repr.
        response: Any = self.core.read_namespaced_pod_log(
            pod, namespace, tail_lines=tail_lines, _preload_content=False
        )
        return bytes(response.data).decode("utf-8", errors="replace")

    def proxy(self, namespace: str, pod: str, port: int, path: str, timeout: float) -> str:
        try:
            response: Any = self.core.connect_get_namespaced_pod_proxy_with_path(
                f"{pod}:{port}",
                namespace,
                path.lstrip("/"),
                _preload_content=False,
                _request_timeout=timeout,
            )
        except Exception as exc:
            unreachable = _unreachable(exc, timeout)
            if unreachable is not None:
                raise unreachable from exc
            raise
        return bytes(response.data).decode("utf-8", errors="replace")

    def scale(self, namespace: str, name: str, *, autoscaled: bool) -> ScaleState:
        deployment: Any = self.apps.read_namespaced_deployment_status(name, namespace)
        status, spec = deployment.status, deployment.spec
        desired = spec.replicas or 0
        if autoscaled:
            hpa: Any = self.autoscaling.read_namespaced_horizontal_pod_autoscaler_status(
                name, namespace
            )
            desired = hpa.status.desired_replicas or desired
        return ScaleState(status.replicas or 0, status.ready_replicas or 0, desired)

    def rollout(self, namespace: str, name: str) -> RolloutState:
        found: Any = self.apps.read_namespaced_deployment(name, namespace)
        spec, status = found.spec, found.status
        strategy = self.apps.api_client.sanitize_for_serialization(spec.strategy) or {}
        return RolloutState(
            generation=found.metadata.generation or 0,
            observed_generation=status.observed_generation or 0,
            replicas=spec.replicas if spec.replicas is not None else 1,
            current=status.replicas or 0,
            updated=status.updated_replicas or 0,
            ready=status.ready_replicas or 0,
            available=status.available_replicas or 0,
            strategy=dict(strategy),
            paused=bool(spec.paused),
        )

    def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> int:
        # The client would send a dict as a JSON patch (its first content type): say which.
        found: Any = self.apps.patch_namespaced_deployment(
            name, namespace, patch, _content_type="application/strategic-merge-patch+json"
        )
        return int(found.metadata.generation or 0)

    def pod_usage(
        self, namespace: str, component: str, name: str
    ) -> dict[str, tuple[float, float]]:
        found: Any = self.custom.list_namespaced_custom_object(
            "metrics.k8s.io",
            "v1beta1",
            namespace,
            "pods",
            label_selector=f"app.kubernetes.io/component={component},app.kubernetes.io/name={name}",
        )
        usage: dict[str, tuple[float, float]] = {}
        for item in found.get("items", []):
            containers = item.get("containers") or []
            cpu = sum(usage_cpu_m(c["usage"]["cpu"]) for c in containers)
            memory = sum(usage_mib(c["usage"]["memory"]) for c in containers)
            usage[item["metadata"]["name"]] = (cpu, memory)
        return usage

    def warnings(self, namespace: str) -> list[ClusterEvent]:
        found: Any = self.core.list_namespaced_event(namespace, field_selector="type=Warning")
        events = []
        for item in found.items:
            seen = item.last_timestamp or item.event_time or item.metadata.creation_timestamp
            events.append(
                ClusterEvent(
                    uid=item.metadata.uid or item.metadata.name,
                    reason=item.reason or "",
                    message=item.message or "",
                    involved=item.involved_object.name or "",
                    count=item.count or 1,
                    last=seen.timestamp() if seen is not None else time.time(),
                )
            )
        return events

    def create_chaos(self, namespace: str, plural: str, body: dict[str, Any]) -> None:
        # Strict: a field the CRD does not know is an error, not silently pruned.
        self.custom.create_namespaced_custom_object(
            CHAOS_GROUP, CHAOS_VERSION, namespace, plural, body, field_validation="Strict"
        )

    def get_chaos(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        try:
            found: Any = self.custom.get_namespaced_custom_object(
                CHAOS_GROUP, CHAOS_VERSION, namespace, plural, name
            )
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        return dict(found)

    def delete_chaos(self, namespace: str, plural: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                CHAOS_GROUP, CHAOS_VERSION, namespace, plural, name
            )
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise

    def hook(
        self,
        namespace: str,
        pod: str,
        port: int,
        request: tuple[str, str, dict[str, Any] | None],
        headers: dict[str, str],
    ) -> str | None:
        method, path, body = request
        client = self.core.api_client
        # The path is written out (the generated proxy calls would encode its slashes, and
        # send no body).
        params = client.param_serialize(
            method=method,
            resource_path=f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}",
            header_params={"Accept": "application/json", **headers},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = client.call_api(*params, _request_timeout=HOOK_TIMEOUT_S)
            response.read()
        except Exception as exc:
            unreachable = _unreachable(exc, HOOK_TIMEOUT_S)
            if unreachable is not None:
                raise unreachable from exc
            status = getattr(exc, "status", None)
            return f"HTTP {status}" if status else f"{type(exc).__name__}: {exc}"[:200]
        if not 200 <= response.status < 300:
            said = bytes(response.data or b"").decode("utf-8", errors="replace")
            if response.status in (502, 503) and any(s in said for s in UNREACHABLE_SAID):
                raise ProxyUnreachable(f"HTTP {response.status}: {_status_message(said)}")
            return f"HTTP {response.status}"
        return None

    def missing_chaos_kinds(self, plurals: Sequence[str]) -> list[str]:
        try:
            found: Any = self.custom.get_api_resources(CHAOS_GROUP, CHAOS_VERSION)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return list(plurals)  # no chaos-mesh.org/v1alpha1 at all
            raise
        served = {r.name for r in found.resources or []}
        return [p for p in plurals if p not in served]


def kubernetes_api(access: ClusterAccess) -> ClusterApi:
    return _KubernetesApi(access)


def _unreachable(exc: BaseException, timeout: float) -> ProxyUnreachable | None:
    """The proxy's failure to reach the pod, from what the client raised; None for any other
    error (the pod's own answer, a refusal of the API server)."""
    status = getattr(exc, "status", None)
    body = str(getattr(exc, "body", None) or "")
    if status in (502, 503) and any(said in body for said in UNREACHABLE_SAID):
        return ProxyUnreachable(f"HTTP {status}: {_status_message(body)}")
    # urllib3's timeouts (read, connect; alone or as a MaxRetryError's reason) are named
    # TimeoutError along their bases; the client is not imported for them.
    for error in (exc, getattr(exc, "reason", None)):
        if error is not None and any(c.__name__ == "TimeoutError" for c in type(error).__mro__):
            return ProxyUnreachable(f"no answer in {timeout:g} s")
    return None


def _status_message(body: str) -> str:
    """A Status document's message (or the body's first line), short."""
    try:
        said = json.loads(body)
    except ValueError:
        said = None
    text = str(said.get("message")) if isinstance(said, dict) and said.get("message") else body
    lines = text.strip().splitlines()
    return (lines[0] if lines else "no message")[:200]


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
        node=(pod.spec.node_name if pod.spec is not None else None) or "",
    )
    statuses = pod.status.container_statuses or []
    running = [s.state.running.started_at for s in statuses if s.state.running is not None]
    if statuses and len(running) == len(statuses) and all(running):
        state.started = max(at.timestamp() for at in running)
    for status in statuses:
        state.restarts += status.restart_count or 0
        last = status.last_state.terminated if status.last_state is not None else None
        if last is not None:
            state.last_terminated = last.reason or ""
        if status.state.waiting is not None:
            state.waiting = status.state.waiting.reason or ""
            state.message = status.state.waiting.message or state.message
        if status.state.terminated is not None:
            state.terminated = status.state.terminated.reason or ""
            state.exit_code = status.state.terminated.exit_code
    for condition in pod.status.conditions or []:
        if condition.type == "Ready":
            state.ready = condition.status == "True"
        if condition.type == "PodScheduled" and condition.status == "False":
            state.unschedulable = condition.message or condition.reason or ""
    return state
