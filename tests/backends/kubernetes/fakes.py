"""Stand-ins for what cannot run here: the Pulumi engine and a Kubernetes cluster.

:class:`FakeEngine` stands in for the Automation API (it records up/destroy/remove) and
:class:`FakeCluster` for the Kubernetes API (pods and their logs, one snapshot per poll).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from stressbed.backends.kubernetes import (
    ClusterEvent,
    NamespaceState,
    PodState,
    RolloutState,
    ScaleState,
)
from stressbed.fleet.segments import segment
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.transport import result_lines

KUBECONFIG = """
apiVersion: v1
kind: Config
current-context: kind-stressbed
contexts:
- name: kind-stressbed
  context: {cluster: kind-stressbed, user: kind-stressbed}
- name: prod
  context: {cluster: prod, user: prod}
clusters:
- name: kind-stressbed
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: kind-stressbed
  user: {token: x}
"""

SCENARIO = """from stressbed import *
scenario = Scenario("k", description="kube", workloads=[
    Workload("w", get("/healthz"), SharedIterations(vus=2, iterations=10))])
"""


class FakeEngine:
    def __init__(self, calls: list[str], fail: dict[str, Exception] | None = None) -> None:
        self.calls = calls
        self.fail = fail or {}

    def up(self, program: Callable[[], None]) -> None:
        state = program.__self__  # type: ignore[attr-defined]  # the run's bound program
        what = "up:fleet" if state.fleet is not None else "up:agent"
        self.calls.append(what)
        if what in self.fail:
            raise self.fail[what]

    def destroy(self) -> None:
        self.calls.append("destroy")
        if "destroy" in self.fail:
            raise self.fail["destroy"]

    def remove(self) -> None:
        self.calls.append("remove")

    def kill(self) -> None:
        self.calls.append("kill")

    def stop(self, wait_s: float) -> None:
        self.calls.append("stop")


def result_log(index: int, count: int, **changes: Any) -> str:
    """A runner pod's log as the runner writes it: its events, then its result in chunks."""
    now = time.time()
    document = RunnerResult(
        index=index,
        count=count,
        segment=segment(index, count),
        status=RunnerStatus.OK,
        exit_code=0,
        started_at=now - 5,
        ended_at=now,
    ).to_dict()
    lines = [{"event": "ready", "index": index}, *result_lines(index, {**document, **changes})]
    return "".join(json.dumps(line) + "\n" for line in lines)


class FakeCluster:
    """Pods as the Kubernetes API would list them: one snapshot per poll, the last repeats."""

    def __init__(self, runners: int, snapshots: list[dict[int, dict[str, Any]]]) -> None:
        self.runners = runners
        self.snapshots = snapshots
        self.polls = 0
        self.interrupt_at: int | None = None
        self.api_failures: set[int] = set()
        self.coordinator = PodState("coordinator", -1, "Succeeded", time.time())
        self.coordinator_log = json.dumps({"event": "started", "skew_ms": 1.0}) + "\n"
        #: Lines the coordinator prints as the fleet runs: (the poll from which on it has
        #: printed it, the line).
        self.coordinator_news: list[tuple[int, dict[str, Any]]] = []
        self.tails: list[int | None] = []  # the tail_lines of each coordinator log read
        self.proxied: list[tuple[str, int, str]] = []  # (pod, port, path) of each proxied GET
        self.agents = [PodState("agent-7d9-x", -1, "Running", time.time())]
        #: The fleet (runner Job) the pods belong to; None: whichever fleet is asked for.
        self.fleet: str | None = None
        self.asked: list[tuple[str, str | None]] = []  # (component, name) of each listing
        #: The agent Deployment as each read of it finds it (the last repeats).
        self.scales = [ScaleState(1, 1, 1)]
        self.scale_reads = 0
        #: Each agent pod's (millicores, MiB); None: no metrics-server in this cluster.
        self.usage: dict[str, tuple[float, float]] | None = {"agent-7d9-x": (120.0, 40.0)}
        self.warning_events: list[ClusterEvent] = []
        #: Runner pods stay Running this long after the first listing of them (0: as the
        #: snapshots say).
        self.running_for_s = 0.0
        self._running_until: float | None = None
        #: Chaos Mesh, as far as the faults need it: its CRDs, the objects made, what was done.
        self.crds = {
            "podchaos.chaos-mesh.org",
            "networkchaos.chaos-mesh.org",
            "stresschaos.chaos-mesh.org",
            "iochaos.chaos-mesh.org",
        }
        self.chaos: dict[tuple[str, str], dict[str, Any]] = {}
        self.chaos_calls: list[tuple[str, str, str]] = []  # (what, plural, name)
        self.chaos_created: list[dict[str, Any]] = []  # every body, as created
        self.undeletable = False  # a finalizer that never completes
        self.applying = True  # False: Chaos Mesh never applies anything (no target matched)
        self.chaos_validate: Callable[[dict[str, Any]], None] | None = None
        #: Calls to the agent pods' fault hook: (pod, method, path, body, headers).
        self.hooked: list[tuple[str, str, str, Any, dict[str, str]]] = []
        self.hook_refusals: set[str] = set()  # pods whose hook answers 403
        #: The agent Deployment as a rollout goes: each read after a restart one step on.
        self.deployment = RolloutState(
            generation=1,
            observed_generation=1,
            replicas=2,
            current=2,
            updated=2,
            ready=2,
            available=2,
            strategy={
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
        )
        self.patches: list[dict[str, Any]] = []  # every patch of the Deployment, as sent
        self.rollout_stuck = False  # a new pod that never gets ready
        self._steps: list[str] = []  # what the Deployment controller does next
        #: Namespaces made through the API (a neighbour's, ``...-nb-...``), by name; one of
        #: those is there only once made. Any other is the stack's (Pulumi's): there, with a
        #: uid of its name, unless it was removed.
        self.namespaces_made: dict[str, dict[str, Any]] = {}
        self.namespace_calls: list[tuple[str, str]] = []  # (what, name)
        self.terminating: set[str] = set()  # deleted, their content not gone
        self.removed: set[str] = set()  # gone (a neighbour's deleted; a run's destroyed)
        #: Jobs (a neighbour's), by name, as created; their pods as the scheduler leaves them.
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_calls: list[tuple[str, str]] = []  # (what, name)
        #: Checks each Job and namespace body as created (strict schema validation).
        self.job_validate: Callable[[dict[str, Any]], None] | None = None
        #: A Job's pod: "Running" on node-a (started when the Job was made), or "Pending"
        #: (no node beside an agent pod), or None (no pod made: a quota refused it).
        self.job_pod_phase: str | None = "Running"
        self.job_pod_lingers = False  # a deleted Job's (or namespace's) pod that never goes
        self._job_pods: dict[tuple[str, str], PodState] = {}  # by (namespace, Job)

    def pods(self, namespace: str, component: str, name: str | None = None) -> list[PodState]:
        self.asked.append((component, name))
        if component == "neighbour":
            return [p for (ns, job), p in self._job_pods.items() if (ns, job) == (namespace, name)]
        if component != "agent" and None not in (name, self.fleet) and name != self.fleet:
            return []
        if component == "coordinator":
            return [self.coordinator]
        if component == "agent":
            return list(self.agents)
        self.polls += 1
        if self.polls in self.api_failures:
            raise OSError("connection reset")
        if self.polls == self.interrupt_at:  # one Ctrl-C, at that poll
            raise KeyboardInterrupt
        snapshot = self.snapshots[min(self.polls - 1, len(self.snapshots) - 1)]
        if self._running_until is None:
            self._running_until = time.time() + self.running_for_s
        if time.time() < self._running_until:
            snapshot = {i: {"phase": "Running"} for i in range(self.runners)}
        return [
            PodState(f"runners-{i}", i, **{"phase": "Succeeded", "created": time.time(), **over})
            for i, over in ((i, snapshot.get(i, {})) for i in range(self.runners))
        ]

    def scale(self, namespace: str, name: str, *, autoscaled: bool) -> ScaleState:
        self.scale_reads += 1
        return self.scales[min(self.scale_reads - 1, len(self.scales) - 1)]

    def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> int:
        self.patches.append(json.loads(json.dumps(patch)))
        deployment, spec = self.deployment, patch["spec"]
        deployment.generation += 1
        if "strategy" in spec:
            deployment.strategy = spec["strategy"]
        deployment.paused = bool(spec.get("paused", deployment.paused))
        if "template" in spec:  # a new revision: every old pod replaced, one after the other
            deployment.updated = 0
            self._steps = ["old pod deleted", "new pod made", "new pod ready"] * deployment.replicas
        return deployment.generation

    def rollout(self, namespace: str, name: str) -> RolloutState:
        deployment = self.deployment
        if deployment.observed_generation < deployment.generation:
            deployment.observed_generation = deployment.generation
        elif self._steps and not deployment.paused:
            step = self._steps[0]
            if step == "new pod ready" and self.rollout_stuck:
                return RolloutState(**vars(deployment))
            self._steps.pop(0)
            if step == "old pod deleted":
                deployment.current -= 1
                deployment.ready -= 1
                deployment.available -= 1
            elif step == "new pod made":
                deployment.current += 1
                deployment.updated += 1
            else:
                deployment.ready += 1
                deployment.available += 1
        return RolloutState(**vars(deployment))

    def pod_usage(
        self, namespace: str, component: str, name: str
    ) -> dict[str, tuple[float, float]]:
        if self.usage is None:
            raise OSError(
                "the server could not find the requested resource (get pods.metrics.k8s.io)"
            )
        return dict(self.usage)

    def warnings(self, namespace: str) -> list[ClusterEvent]:
        return list(self.warning_events)

    def proxy(self, namespace: str, pod: str, port: int, path: str, timeout: float) -> str:
        self.proxied.append((pod, port, path))
        return "# TYPE agent_queue_points gauge\nagent_queue_points 3\n"

    def log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
        if pod == self.coordinator.name:
            self.tails.append(tail_lines)
            news = [
                json.dumps(line) + "\n" for at, line in self.coordinator_news if at <= self.polls
            ]
            lines = self.coordinator_log.splitlines(keepends=True) + news
            return "".join(lines[-tail_lines:] if tail_lines else lines)
        index = int(pod.rsplit("-", 1)[1])
        return result_log(index, self.runners)

    # -- Chaos Mesh ----------------------------------------------------------------------

    def hook(
        self,
        namespace: str,
        pod: str,
        port: int,
        request: tuple[str, str, Any],
        headers: dict[str, str],
    ) -> str | None:
        method, path, body = request
        self.hooked.append((pod, method, path, body, dict(headers)))
        return "HTTP 403" if pod in self.hook_refusals else None

    def missing_chaos_kinds(self, plurals: Any) -> list[str]:
        return [p for p in plurals if f"{p}.chaos-mesh.org" not in self.crds]

    def create_chaos(self, namespace: str, plural: str, body: dict[str, Any]) -> None:
        if self.chaos_validate is not None:
            self.chaos_validate(body)
        name = body["metadata"]["name"]
        self.chaos_calls.append(("create", plural, name))
        self.chaos_created.append(json.loads(json.dumps(body)))
        self.chaos[(plural, name)] = {"body": body, "created": time.time(), "deleted": None}

    def get_chaos(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        found = self.chaos.get((plural, name))
        if found is None:
            return None
        body = found["body"]
        pods = body["spec"]["selector"]["pods"][namespace]
        events = [_chaos_event("Apply", found["created"])] if self.applying else []
        if found["deleted"] is not None:
            events.append(_chaos_event("Recover", found["deleted"]))
            if not self.undeletable:
                del self.chaos[(plural, name)]  # its finalizer done: gone at the next read
        records = [{"id": f"{namespace}/{pod}", "events": events} for pod in pods]
        return {**body, "status": {"experiment": {"containerRecords": records}}}

    def delete_chaos(self, namespace: str, plural: str, name: str) -> None:
        self.chaos_calls.append(("delete", plural, name))
        found = self.chaos.get((plural, name))
        if found is not None and found["deleted"] is None:
            found["deleted"] = time.time()

    # -- namespaces and Jobs (a neighbour) -----------------------------------------------

    def namespace(self, name: str) -> NamespaceState | None:
        made = self.namespaces_made.get(name)
        if made is None:
            if name in self.removed or "-nb-" in name:
                return None
            made = {"metadata": {}}
        owners = made["metadata"].get("ownerReferences") or [{}]
        phase = "Terminating" if name in self.terminating else "Active"
        return NamespaceState(name, f"uid-{name}", phase, owners[0].get("name", ""))

    def namespaces(self, label_selector: str) -> list[NamespaceState]:
        wanted = dict(pair.split("=", 1) for pair in label_selector.split(","))
        found = [self.namespace(name) for name in self.namespaces_made]
        return [
            state
            for state in found
            if state is not None
            and wanted.items() <= self.namespaces_made[state.name]["metadata"]["labels"].items()
        ]

    def create_namespace(self, body: dict[str, Any]) -> None:
        if self.job_validate is not None:
            self.job_validate(body)
        name = body["metadata"]["name"]
        self.namespace_calls.append(("create", name))
        self.namespaces_made[name] = json.loads(json.dumps(body))
        self.removed.discard(name)

    def delete_namespace(self, name: str) -> None:
        """Its Jobs and their pods go with it, then it (unless a pod lingers)."""
        self.namespace_calls.append(("delete", name))
        if name not in self.namespaces_made:
            return
        self.terminating.add(name)
        for job in [j for j, b in self.jobs.items() if b["metadata"]["namespace"] == name]:
            del self.jobs[job]
            if not self.job_pod_lingers:
                self._job_pods.pop((name, job), None)
        if not self.job_pod_lingers:
            del self.namespaces_made[name]
            self.terminating.discard(name)
            self.removed.add(name)

    def create_job(self, namespace: str, body: dict[str, Any]) -> None:
        if self.job_validate is not None:
            self.job_validate(body)
        # A neighbour's Job goes in the namespace made for it, once made.
        if namespace not in self.namespaces_made or namespace != body["metadata"]["namespace"]:
            raise OSError(f'namespaces "{namespace}" not found')
        name = body["metadata"]["name"]
        self.job_calls.append(("create", name))
        self.jobs[name] = json.loads(json.dumps(body))
        if self.job_pod_phase == "Running":
            started = float(int(time.time()))  # whole seconds, as the API server's stamps
            self._job_pods[namespace, name] = PodState(
                f"{name}-x7k2p", -1, "Running", time.time(), node="node-a", started=started
            )
        elif self.job_pod_phase == "Pending":
            unschedulable = "0/3 nodes are available: 3 node(s) didn't match pod affinity rules."
            self._job_pods[namespace, name] = PodState(
                f"{name}-x7k2p", -1, "Pending", time.time(), unschedulable=unschedulable
            )

    def end_job_pod(self, name: str, reason: str) -> None:
        """Job ``name``'s pod ends by itself (OOMKilled, its hogs gone)."""
        (key,) = [key for key in self._job_pods if key[1] == name]
        pod = self._job_pods[key]
        self._job_pods[key] = PodState(pod.name, -1, "Failed", pod.created, terminated=reason)


def _chaos_event(operation: str, at: float) -> dict[str, Any]:
    """A record's event as Chaos Mesh writes it: RFC 3339, whole seconds."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    return {"type": "Succeeded", "operation": operation, "timestamp": stamp}
