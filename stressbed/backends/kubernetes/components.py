"""Pulumi components for Kubernetes: ``AgentStack`` and ``RunnerFleet``.

Both are thin: the manifests come from :mod:`.manifests` and :mod:`.fleet_manifests` (one
pure translation of the StackSpec and the fleet), and each becomes a typed pulumi-kubernetes
resource whose parent is the component. The program in ``infra/`` (``pulumi up``) and the
Kubernetes backend's Automation API run (``stressbed run --backend kubernetes``) both use them.

Jobs carry ``pulumi.com/skipAwait``: ``pulumi up`` returns once the fleet is created, not
when the test ends; the run is followed through the Kubernetes API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ...stack.spec import StackSpec
from .fleet_manifests import fleet_manifests
from .manifests import Cluster, ClusterFleet, agent_manifests

__all__ = ["AgentStack", "AgentStackArgs", "RunnerFleet", "RunnerFleetArgs", "resource_for"]

_CLASSES: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
}
_TOP_LEVEL = {
    "metadata": "metadata",
    "spec": "spec",
    "data": "data",
    "stringData": "string_data",
    "type": "type",
    "automountServiceAccountToken": "automount_service_account_token",
}


def resource_for(
    manifest: Mapping[str, Any],
    parent: pulumi.Resource,
    depends_on: list[pulumi.Resource] | None = None,
    secrets: Mapping[str, str] | None = None,
    ignore_changes: list[str] | None = None,
) -> pulumi.CustomResource:
    """The typed pulumi-kubernetes resource of one manifest, a child of ``parent``;
    ``ignore_changes``: property paths another controller owns once it exists."""
    cls = _CLASSES[(manifest["apiVersion"], manifest["kind"])]
    kwargs: dict[str, Any] = {}
    for key, value in manifest.items():
        if key in ("apiVersion", "kind"):
            continue
        kwargs[_TOP_LEVEL[key]] = value
    if manifest["kind"] == "Secret":
        # The manifest names the keys; the values are Pulumi secrets, encrypted in the state.
        kwargs["string_data"] = {
            key: pulumi.Output.secret((secrets or {}).get(key, ""))
            for key in manifest.get("stringData", {})
        }
    if manifest["kind"] == "Job":
        meta = dict(kwargs["metadata"])
        meta["annotations"] = {**meta.get("annotations", {}), "pulumi.com/skipAwait": "true"}
        kwargs["metadata"] = meta
    kind = re.sub(r"(?<!^)(?=[A-Z])", "-", manifest["kind"]).lower()
    name = f"{kind}-{manifest['metadata']['name']}"
    options = pulumi.ResourceOptions(
        parent=parent, depends_on=depends_on or [], ignore_changes=ignore_changes
    )
    resource: pulumi.CustomResource = cls(name, opts=options, **kwargs)
    return resource


@dataclass
class AgentStackArgs:
    spec: StackSpec
    cluster: Cluster = field(default_factory=Cluster)
    #: The fleet that will share the namespace: its share is added to the quota.
    fleet: ClusterFleet | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)


class AgentStack(pulumi.ComponentResource):
    """The agent stack of a StackSpec in its own namespace."""

    namespace: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: AgentStackArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("stressbed:index:AgentStack", name, None, opts)
        manifests = agent_manifests(args.spec, args.cluster, args.fleet)
        first = resource_for(manifests[0], self)  # the namespace
        # The HPA scales the Deployment from its first count on: a later `up` (the next
        # fleet's, a changed image) must not reset the count it chose.
        scaled = ["spec.replicas"] if args.spec.autoscaler is not None else None
        self.resources = [first] + [
            resource_for(
                m,
                self,
                depends_on=[first],
                secrets=args.secrets,
                ignore_changes=scaled if m["kind"] == "Deployment" else None,
            )
            for m in manifests[1:]
        ]
        target = args.spec.target
        self.namespace = pulumi.Output.from_input(args.cluster.namespace)
        self.url = pulumi.Output.from_input(
            f"http://{target.name}.{args.cluster.namespace}.svc:{target.port}"
        )
        self.register_outputs({"namespace": self.namespace, "url": self.url})


@dataclass
class RunnerFleetArgs:
    fleet: ClusterFleet
    target_url: str
    cluster: Cluster = field(default_factory=Cluster)
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: Created after these (the agent stack: its namespace must exist first).
    after: list[pulumi.Resource] = field(default_factory=list)


class RunnerFleet(pulumi.ComponentResource):
    """The runners as an Indexed Job, their bundle, and the coordinator that releases them."""

    job_name: pulumi.Output[str]
    coordinator_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: RunnerFleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("stressbed:index:RunnerFleet", name, None, opts)
        manifests = fleet_manifests(args.fleet, args.cluster, args.target_url)
        # The Jobs come last: their pods need the bundle, the Secret, the ServiceAccount and
        # the headless Service to exist, or they start with a config error.
        first = [
            resource_for(m, self, depends_on=list(args.after), secrets=args.secrets)
            for m in manifests
            if m["kind"] != "Job"
        ]
        jobs = [
            resource_for(m, self, depends_on=[*args.after, *first], secrets=args.secrets)
            for m in manifests
            if m["kind"] == "Job"
        ]
        self.resources = first + jobs
        self.job_name = pulumi.Output.from_input(args.fleet.name)
        self.coordinator_name = pulumi.Output.from_input(args.fleet.coordinator_name)
        self.register_outputs(
            {"job_name": self.job_name, "coordinator_name": self.coordinator_name}
        )
