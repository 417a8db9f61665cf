"""What the API server would refuse at apply time, refused before anything exists (exit 2).

The agent's manifests must build (an image to run); the runner and coordinator pods must fit
the namespace's LimitRange (the StackSpec's, applied to every pod); the k6 bundle must fit the
one ConfigMap it travels in (the API server's 1 MiB object limit).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from ...errors import ConfigError
from ...scenario.model import Scenario
from ...scenario.render import bundle_files, render
from ...stack.quantities import Resources, show_quantity
from ...stack.spec import IoLimits, StackSpec
from .fleet_manifests import bundle_key
from .manifests import COORDINATOR_LIMITS, COORDINATOR_REQUESTS, Cluster, agent_manifests

__all__ = ["CONFIGMAP_BUDGET", "check_bundle", "check_stack"]

#: The API server's object limit (1 MiB), less room for the ConfigMap's own metadata.
CONFIGMAP_BUDGET = 1024 * 1024 - 16 * 1024


#: The StackSpec limits no pod spec has a field for, and why (the backend refuses them).
NOT_IN_A_POD = {
    "io": "no IO limit in a pod spec: Kubernetes does not limit a pod's IO (a Chaos Mesh "
    "IOChaos fault covers its fault side); remove stack.io for --backend kubernetes",
    "pids": "no pids limit in a pod spec: the kubelet's podPidsLimit (its --pod-max-pids, a "
    "node setting) holds a pod's processes; remove stack.pids for --backend kubernetes",
    "nofile": "no open-file limit in a pod spec: the container runtime's default holds it; "
    "remove stack.nofile for --backend kubernetes",
}


def _refuse_what_a_pod_cannot_hold(spec: StackSpec) -> None:
    for name, why in NOT_IN_A_POD.items():
        value = getattr(spec, name)
        if value is not None:
            raise ConfigError(f"stack.{name}", _shown(value), why)


def _shown(value: object) -> object:
    if isinstance(value, IoLimits):
        return {k: v for k, v in vars(value).items() if v is not None}
    return value


def check_stack(
    spec: StackSpec, agent_image: str | None, runner: tuple[Resources, Resources]
) -> None:
    """The agent stack builds and every pod of the run fits the StackSpec's LimitRange."""
    if agent_image:
        spec = replace(spec, target=replace(spec.target, image=agent_image))
    if not spec.target.image:
        raise ConfigError(
            "stack.target.image", "", "an image for the kubernetes backend (or --agent-image)"
        )
    _refuse_what_a_pod_cannot_hold(spec)
    agent_manifests(spec, Cluster())
    limit_range = spec.limit_range
    if limit_range is None:
        return
    pods = {
        "--runner": runner,
        "coordinator": (COORDINATOR_REQUESTS, COORDINATOR_LIMITS),
    }
    for who, (requests, limits) in pods.items():
        for kind, option in (("cpu_m", "cpu"), ("memory", "memory")):
            low = getattr(limit_range.minimum, kind)
            high = getattr(limit_range.maximum, kind)
            for what, amount in (
                ("request", getattr(requests, kind)),
                ("limit", getattr(limits, kind)),
            ):
                if amount is None:
                    continue
                if (low is not None and amount < low) or (high is not None and amount > high):
                    field = f"{who}-{option}" if who.startswith("--") else f"the {who}'s {option}"
                    raise ConfigError(
                        field,
                        show_quantity(kind, amount),
                        f"a {what} within the stack's LimitRange "
                        f"({show_quantity(kind, low)}..{show_quantity(kind, high)}): the "
                        "LimitRange applies to every pod of the namespace, the runners' too",
                    )


def check_bundle(scenario: Scenario) -> None:
    """The rendered bundle fits the ConfigMap the runners read it from."""
    with tempfile.TemporaryDirectory(prefix="stressbed-check-") as tmp:
        files = bundle_files(render(scenario, Path(tmp) / "bundle").root)
    size = sum(len(bundle_key(k)) + len(v.encode()) for k, v in files.items())
    if size > CONFIGMAP_BUDGET:
        raise ConfigError(
            "--scenario",
            scenario.name,
            f"a k6 bundle that fits one ConfigMap (at most {CONFIGMAP_BUDGET // 1024} KiB; "
            f"this one is {size // 1024} KiB, its data files most of it)",
        )
