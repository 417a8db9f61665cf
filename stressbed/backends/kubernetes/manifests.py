"""StackSpec and fleet -> Kubernetes manifests: one pure translation, shared by the Pulumi
components (:mod:`.components`), the Kubernetes backend and the tests. This module has the
agent stack and the pieces both share; the fleet's manifests are :mod:`.fleet_manifests`.

Every function returns plain manifest dicts (``apiVersion``, ``kind``, ``metadata``, ...) that
validate against the API server's strict schemas. The agent gets a Namespace labelled for Pod
Security Admission ``restricted``, a ResourceQuota (the agent's quota plus room for the fleet),
a LimitRange, a ServiceAccount without a token, a Deployment (created with the replicas the
stack starts with; an HPA owns the count afterwards), a Service, an autoscaling/v2 HPA, a
PodDisruptionBudget and a NetworkPolicy that admits only the runners and in-namespace
monitoring. The fleet is an Indexed Job of runners (segment from the completion index, k6's
REST API on the pod IP), a headless Service naming each runner, a coordinator Job that releases
them together and then follows them (progress, live aborts), the k6 bundle in a ConfigMap, and
NetworkPolicies that let only the coordinator reach the runners.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...scenario.thresholds import Threshold
from ...stack.quantities import Resources
from ...stack.spec import Probe, StackSpec

__all__ = [
    "AGENT",
    "CONTROL_PORT",
    "COORDINATOR",
    "COORDINATOR_LIMITS",
    "COORDINATOR_REQUESTS",
    "DATA_PATH",
    "K6_API_PORT",
    "RUNNER",
    "RUNNER_LIMITS",
    "RUNNER_REQUESTS",
    "Cluster",
    "ClusterFleet",
    "Manifest",
    "agent_manifests",
    "agent_secret_keys",
    "container_security",
    "label_value",
    "labels",
    "meta",
    "pod_security",
    "quota_needs",
    "resources",
    "restricted",
    "secret",
    "selector",
]

Manifest = dict[str, Any]

AGENT = "agent"
RUNNER = "runner"
COORDINATOR = "coordinator"
PART_OF = "stressbed"
MONITORING = "monitoring"  # pods labelled app.kubernetes.io/component=monitoring may scrape
K6_API_PORT = 6565
CONTROL_PORT = 6566  # a runner's live snapshots and stop (stressbed.fleet.control)
RUNNER_REQUESTS = Resources(500, 256 * 2**20)
RUNNER_LIMITS = Resources(2000, 1024 * 2**20)
COORDINATOR_REQUESTS = Resources(100, 64 * 2**20)
COORDINATOR_LIMITS = Resources(500, 256 * 2**20)
#: Where an agent pod's data folder (``{data}``) is: its own writable emptyDir, ``tmp``.
DATA_PATH = "/tmp"


@dataclass(frozen=True)
class Cluster:
    """Where and how the stack runs in a cluster."""

    namespace: str = "stressbed"
    image_pull_policy: str = "IfNotPresent"
    run_id: str = "manual"
    #: Where the API server's requests to pods come from: the pod proxy through which the
    #: agent's metrics are scraped and its fault hook called. Admitted by the agent's
    #: NetworkPolicy; empty, a CNI that enforces it holds the proxy back.
    control_plane_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterFleet:
    """The runner fleet in a cluster: N runners of ``image`` and the bundle they run."""

    runners: int
    bundle: Mapping[str, str]  # bundle-relative path -> file text
    image: str = "stressbed-runner:latest"
    requests: Resources = RUNNER_REQUESTS
    limits: Resources = RUNNER_LIMITS
    deadline_s: int = 3600  # the Jobs' activeDeadlineSeconds (the release's wait included)
    ready_timeout_s: int = 300  # every runner ready within this of the coordinator's start
    setup_timeout_s: int = 120  # setup() within this, once they are
    suspend: bool = False  # True: created, started by hand (unsuspend both Jobs)
    name: str = "stressbed-runners"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()  # names read from the run's Secret
    #: Judged live by the coordinator on the merged fleet; one that fails stops every runner.
    abort_thresholds: tuple[Threshold, ...] = ()

    @property
    def coordinator_name(self) -> str:
        return f"{self.name}-coordinator"


def labels(component: str, cluster: Cluster, name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "stressbed.dev/run": label_value(cluster.run_id),
    }


def selector(component: str, name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}


# -- the agent stack ------------------------------------------------------------------------


def agent_manifests(
    spec: StackSpec, cluster: Cluster, fleet: ClusterFleet | None = None
) -> list[Manifest]:
    """Everything the agent stack needs, in the order to create it."""
    spec = spec.validate()
    name = spec.target.name
    common = meta(name, cluster, AGENT)
    out: list[Manifest] = [namespace(cluster)]
    quota = resource_quota(spec, cluster, fleet)
    if quota is not None:
        out.append(quota)
    if spec.limit_range is not None:
        out.append(limit_range(spec, cluster))
    out.append(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": common,
            "automountServiceAccountToken": False,
        }
    )
    if agent_secret_keys(spec):
        out.append(secret(f"{name}-secrets", cluster, AGENT, agent_secret_keys(spec)))
    out.append(deployment(spec, cluster))
    out.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": common,
            "spec": {
                "selector": selector(AGENT, name),
                "ports": [
                    {"name": "http", "port": spec.target.port, "targetPort": "http"},
                ],
            },
        }
    )
    if spec.autoscaler is not None:
        out.append(hpa(spec, cluster))
    out.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": common,
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(AGENT, name)}},
        }
    )
    out.append(agent_network_policy(spec, cluster, fleet))
    return out


def restricted() -> dict[str, str]:
    """A namespace's labels for Pod Security Admission ``restricted``: enforced, audited and
    warned, at the cluster's latest version."""
    psa = {
        f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
    }
    return {**psa, "pod-security.kubernetes.io/enforce-version": "latest"}


def namespace(cluster: Cluster) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": cluster.namespace,
            # Where Chaos Mesh runs with enableFilterNamespace, it acts only in namespaces
            # that say so: the run's faults are aimed here.
            "annotations": {"chaos-mesh.org/inject": "enabled"},
            "labels": {**restricted(), "app.kubernetes.io/part-of": PART_OF},
        },
    }


def quota_needs(spec: StackSpec, fleet: ClusterFleet | None) -> dict[str, int]:
    """What max replicas plus the fleet (runners and coordinator) take: pods, millicores, bytes."""
    spec = spec.effective()
    most = spec.autoscaler.max_replicas if spec.autoscaler else spec.replicas
    need = {
        "pods": most,
        "requests.cpu": most * (spec.requests.cpu_m or 0),
        "requests.memory": most * (spec.requests.memory or 0),
        "limits.cpu": most * (spec.limits.cpu_m or 0),
        "limits.memory": most * (spec.limits.memory or 0),
    }
    if fleet is not None:
        pods = fleet.runners + 1
        need["pods"] += pods
        need["requests.cpu"] += pods * (fleet.requests.cpu_m or 0)
        need["requests.memory"] += pods * (fleet.requests.memory or 0)
        need["limits.cpu"] += pods * (fleet.limits.cpu_m or 0)
        need["limits.memory"] += pods * (fleet.limits.memory or 0)
    return need


def resource_quota(
    spec: StackSpec, cluster: Cluster, fleet: ClusterFleet | None
) -> Manifest | None:
    """The agent's quota with the fleet's share added: the fleet shares the namespace."""
    quota = spec.quota
    if quota is None:
        return None
    fleet_need = quota_needs(spec, fleet)
    agent_need = quota_needs(spec, None)
    extra = {k: fleet_need[k] - agent_need[k] for k in fleet_need}
    hard: dict[str, str] = {}
    if quota.pods is not None:
        hard["pods"] = str(quota.pods + extra["pods"])
    for what in ("requests", "limits"):
        caps: Resources = getattr(quota, what)
        if caps.cpu_m is not None:
            hard[f"{what}.cpu"] = f"{caps.cpu_m + extra[f'{what}.cpu']}m"
        if caps.memory is not None:
            hard[f"{what}.memory"] = str(caps.memory + extra[f"{what}.memory"])
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta("stressbed", cluster, AGENT),
        "spec": {"hard": hard},
    }


def _empty_dir(spec: StackSpec) -> dict[str, Any]:
    """A writable path's emptyDir: no bigger than the container's ephemeral-storage limit (the
    kubelet evicts the pod past it)."""
    size = spec.limits.ephemeral_storage
    return (
        {}
        if size is None
        else {"sizeLimit": Resources(ephemeral_storage=size).to_k8s()["ephemeral-storage"]}
    )


def limit_range(spec: StackSpec, cluster: Cluster) -> Manifest:
    lr = spec.limit_range
    assert lr is not None
    item: dict[str, Any] = {"type": "Container"}
    for key, resources in (
        ("default", lr.default),
        ("defaultRequest", lr.default_request),
        ("min", lr.minimum),
        ("max", lr.maximum),
    ):
        if resources.to_k8s():
            item[key] = resources.to_k8s()
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": meta("stressbed", cluster, AGENT),
        "spec": {"limits": [item]},
    }


def deployment(spec: StackSpec, cluster: Cluster) -> Manifest:
    name = spec.target.name
    target = spec.target
    if not target.image:
        raise ValueError("the kubernetes backend needs stack.target.image")
    port = str(target.port)
    container: dict[str, Any] = {
        "name": name,
        "image": target.image,
        "imagePullPolicy": cluster.image_pull_policy,
        "ports": [{"name": "http", "containerPort": target.port, "protocol": "TCP"}],
        # {data}: the pod's own writable /tmp (a local stack shares one directory instead).
        "env": [{"name": k, "value": v.replace("{data}", DATA_PATH)} for k, v in target.env]
        + [
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": f"{name}-secrets", "key": key}},
            }
            for key in agent_secret_keys(spec)
        ],
        "resources": resources(spec.requests, spec.limits),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": DATA_PATH}]
        + [
            {"name": f"writable-{i}", "mountPath": path}
            for i, path in enumerate(spec.security.writable_paths)
        ],
    }
    if target.image_args:
        container["args"] = [a.replace("{port}", port) for a in target.image_args]
    for kind in ("startup", "readiness", "liveness"):
        probe = getattr(spec, f"{kind}_probe")
        if probe is not None:
            container[f"{kind}Probe"] = _probe(probe)
    pod_spec: dict[str, Any] = {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        # No service environment variables: STRESSBED_AGENT_PORT=tcp://... from a Service
        # named stressbed-agent would clash with the agent's own settings.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.termination_grace_period_s,
        "securityContext": pod_security(spec.security.run_as_user),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": _empty_dir(spec)}]
        + [
            {"name": f"writable-{i}", "emptyDir": _empty_dir(spec)}
            for i in range(len(spec.security.writable_paths))
        ],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector(AGENT, name)},
            }
        ],
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(AGENT, name)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {"metadata": {"labels": labels(AGENT, cluster, name)}, "spec": pod_spec},
    }
    # With an HPA too: left out, the Deployment would start at 1 and Pulumi would return on
    # one ready pod. The count the local stack starts with (the spec's replicas within the
    # HPA's bounds); the HPA owns it afterwards (the Pulumi resource ignores its changes).
    deployment_spec["replicas"] = spec.initial_replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, cluster, AGENT),
        "spec": deployment_spec,
    }


def hpa(spec: StackSpec, cluster: Cluster) -> Manifest:
    auto = spec.autoscaler
    assert auto is not None
    metrics = []
    for resource, target in (("cpu", auto.cpu_utilization), ("memory", auto.memory_utilization)):
        if target is not None:
            metrics.append(
                {
                    "type": "Resource",
                    "resource": {
                        "name": resource,
                        "target": {"type": "Utilization", "averageUtilization": target},
                    },
                }
            )

    def rules(window: int, policies: tuple[Any, ...]) -> dict[str, Any]:
        return {
            "stabilizationWindowSeconds": window,
            "selectPolicy": "Max",
            "policies": [
                {"type": p.kind, "value": p.value, "periodSeconds": p.period_s} for p in policies
            ],
        }

    behavior = {
        "scaleUp": rules(auto.scale_up_stabilization_s, auto.scale_up_policies),
        "scaleDown": rules(auto.scale_down_stabilization_s, auto.scale_down_policies),
    }
    for direction in ("scaleUp", "scaleDown"):
        if not behavior[direction]["policies"]:
            del behavior[direction]["policies"]
            del behavior[direction]["selectPolicy"]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(spec.target.name, cluster, AGENT),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": spec.target.name,
            },
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": metrics,
            "behavior": behavior,
        },
    }


def agent_network_policy(spec: StackSpec, cluster: Cluster, fleet: ClusterFleet | None) -> Manifest:
    """Only the runner pods (and monitoring in the namespace) reach the agent's port; and the
    control plane's addresses, when given, its port and its metrics port (the pod proxy)."""
    peers = [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/component": RUNNER}}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/component": COORDINATOR}}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/component": MONITORING}}},
    ]
    ingress: list[dict[str, Any]] = [
        {"from": peers, "ports": [{"protocol": "TCP", "port": spec.target.port}]}
    ]
    if cluster.control_plane_cidrs:
        ports = sorted({spec.target.port, (spec.metrics.port if spec.metrics else None) or 0})
        ingress.append(
            {
                "from": [{"ipBlock": {"cidr": cidr}} for cidr in cluster.control_plane_cidrs],
                "ports": [{"protocol": "TCP", "port": p} for p in ports if p],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(spec.target.name, cluster, AGENT),
        "spec": {
            "podSelector": {"matchLabels": selector(AGENT, spec.target.name)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


# -- shared pieces ----------------------------------------------------------------------------


def agent_secret_keys(spec: StackSpec) -> tuple[str, ...]:
    """What the agent's Secret holds: the target's secrets, and its fault hook's token (made
    for the run, given to the agent pods only)."""
    hook = spec.fault_hook
    return spec.target.secret_env + ((hook.token_env,) if hook is not None else ())


def secret(name: str, cluster: Cluster, component: str, keys: tuple[str, ...]) -> Manifest:
    """A Secret whose values the caller fills at apply time (never in these manifests)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(name, cluster, component),
        "type": "Opaque",
        "stringData": dict.fromkeys(keys, ""),
    }


def pod_security(user: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probe(probe: Probe) -> dict[str, Any]:
    # Kubernetes counts whole seconds, at least 1 (0 for the initial delay).
    out: dict[str, Any] = {
        "initialDelaySeconds": math.ceil(probe.initial_delay_s),
        "periodSeconds": max(1, math.ceil(probe.period_s)),
        "timeoutSeconds": max(1, math.ceil(probe.timeout_s)),
        "successThreshold": probe.success_threshold,
        "failureThreshold": probe.failure_threshold,
    }
    if probe.kind == "http":
        out["httpGet"] = {"path": probe.path, "port": "http"}
    elif probe.kind == "tcp":
        out["tcpSocket"] = {"port": "http"}
    else:
        out["exec"] = {"command": list(probe.command)}
    return out


def resources(requests: Resources, limits: Resources) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requests.to_k8s():
        out["requests"] = requests.to_k8s()
    if limits.to_k8s():
        out["limits"] = limits.to_k8s()
    return out


def meta(name: str, cluster: Cluster, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": cluster.namespace,
        "labels": labels(component, cluster, name),
    }


def label_value(value: str) -> str:
    cleaned = re.sub(r"[^-._a-zA-Z0-9]", "-", value)[:63].strip("-._")
    return cleaned or "run"
