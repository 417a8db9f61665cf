"""The Kubernetes backend: the same StackSpec and runners on a cluster, provisioned by Pulumi.

It owns the pure translation to manifests (``manifests``, ``fleet_manifests``), the Pulumi
components that apply them (``components``, the only modules here that import pulumi at the
top, loaded only when a program runs), the preflight (``_preflight``), the Automation API
engine (``_engine``), the Kubernetes API seam and the reading of runner results from pod logs
(``_cluster``), the stack's record of a run (``_watch``), the faults (Chaos Mesh objects,
``chaos``, scheduled by ``_faults``; a rolling restart as the Deployment's rollout,
``_rollout``; a noisy neighbour as a Job in a namespace of its own, ``_neighbour``, made
and swept through ``_namespaces``), and the orchestration of one run: its shared state and
stack (``_stack``), its fleets and the backend (``backend``). It is the only
place in stressbed that imports ``pulumi`` or ``kubernetes``, each inside the function that
needs it, so importing this package needs neither. It may import the layers below the
backends, never the app layer.
"""

from ._cluster import (
    ClusterApi,
    ClusterEvent,
    PodState,
    RolloutState,
    ScaleState,
    fleet_abort,
    fleet_results,
    kubernetes_api,
    runner_failure,
)
from ._engine import Engine
from ._namespaces import NamespaceState, sweep_neighbours
from ._preflight import ClusterAccess, KubernetesOptions, preflight
from .backend import KubernetesBackend

__all__ = [
    "ClusterAccess",
    "ClusterApi",
    "ClusterEvent",
    "Engine",
    "KubernetesBackend",
    "KubernetesOptions",
    "NamespaceState",
    "PodState",
    "RolloutState",
    "ScaleState",
    "fleet_abort",
    "fleet_results",
    "kubernetes_api",
    "preflight",
    "runner_failure",
    "sweep_neighbours",
]
