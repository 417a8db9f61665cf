"""The cluster seam: what the Kubernetes backend reads of the runner pods, and how their
results come back (the last line of each runner's log is its result document).

:class:`ClusterApi` is the seam the tests fake; :func:`kubernetes_api` is the real one, on the
official client. :func:`runner_failure` says why a pod fails a run, :func:`fleet_results`
reads a finished fleet back (``stressbed collect``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import ConfigError, DocumentError
from ...fleet.segments import segment
from ...results.runner_result import RunnerResult, RunnerStatus
from ...results.transport import read_document
from ...scenario.thresholds import Threshold
from ._preflight import ClusterAccess

__all__ = [
    "ClusterApi",
    "PodState",
    "coordinator_reason",
    "fleet_abort",
    "fleet_results",
    "kubernetes_api",
    "result_in_log",
    "runner_failure",
]

IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


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

    def log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
        """The pod's log (its last ``tail_lines`` lines when given)."""
        ...

    def proxy(self, namespace: str, pod: str, port: int, path: str, timeout: float) -> str:
        """GET ``path`` on the pod's ``port`` through the API server's pod proxy (what the
        target's metrics are scraped by: no port of the cluster is opened for it)."""
        ...


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
    for pod in api.pods(namespace, "coordinator"):
        if not pod.name.startswith(f"{job}-coordinator"):
            continue
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


class _KubernetesApi:
    def __init__(self, access: ClusterAccess) -> None:
        from kubernetes import client, config  # noqa: PLC0415 - only with the kubernetes extra

        api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(access.kubeconfig), context=access.context
        )
        self.core = client.CoreV1Api(api_client)

    def pods(self, namespace: str, component: str) -> list[PodState]:
        found = self.core.list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/component={component}"
        )
        return [_pod_state(p) for p in found.items]

    def log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
        # Raw bytes: older clients try to parse a one-line JSON log and hand back a repr.
        response: Any = self.core.read_namespaced_pod_log(
            pod, namespace, tail_lines=tail_lines, _preload_content=False
        )
        return bytes(response.data).decode("utf-8", errors="replace")

    def proxy(self, namespace: str, pod: str, port: int, path: str, timeout: float) -> str:
        response: Any = self.core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod}:{port}",
            namespace,
            path.lstrip("/"),
            _preload_content=False,
            _request_timeout=timeout,
        )
        return bytes(response.data).decode("utf-8", errors="replace")


def kubernetes_api(access: ClusterAccess) -> ClusterApi:
    return _KubernetesApi(access)


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
