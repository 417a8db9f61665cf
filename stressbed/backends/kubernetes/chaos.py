"""A scenario's faults as Chaos Mesh objects (``chaos-mesh.org/v1alpha1``) in the run's
namespace, each aimed at the agent pods chosen by the fault's seed:

    kill     PodChaos     action pod-kill, gracePeriod 0 (one-shot)
    restart  PodChaos     action pod-kill, gracePeriod the pods' terminationGracePeriodSeconds
                          (one-shot): each pod deleted gracefully (SIGTERM, SIGKILL after the
                          grace), its ReplicaSet making a new one at once
    pause    NetworkChaos action partition, both ways, for the fault's duration: nothing
                          reaches the pods or leaves them (Chaos Mesh has no freeze; the
                          process keeps running, and its state), their probes fail
    latency  NetworkChaos action delay {latency, jitter} on what the pods send
    loss     NetworkChaos action loss {loss} on what the pods send
    bandwidth NetworkChaos action bandwidth {rate, limit (a second's worth), buffer}
    cpu      StressChaos  stressors.cpu {workers, load}: the share of the pod's CPU limit
    memory   StressChaos  stressors.memory {workers: 1, size}

The objects are data here (:func:`chaos_object`); :mod:`._faults` creates and deletes them at
the fault's instants and reads the instants Chaos Mesh records back. ``dependency`` (the
target's fault hook) and ``rolling_restart`` (a rollout of the Deployment, :mod:`._rollout`)
need no Chaos Mesh.
"""

from __future__ import annotations

import math
from typing import Any

from ...scenario.faults import Fault
from .manifests import PART_OF, Cluster, label_value

__all__ = [
    "CHAOS_CRDS",
    "CHAOS_GROUP",
    "CHAOS_MESH_VERSION",
    "CHAOS_VERSION",
    "FAULT_KINDS",
    "NEEDS_CHAOS_MESH",
    "PLURALS",
    "chaos_object",
    "object_name",
]

#: The Chaos Mesh release the objects are written (and tested) against.
CHAOS_MESH_VERSION = "2.8.3"
CHAOS_GROUP = "chaos-mesh.org"
CHAOS_VERSION = "v1alpha1"
#: kind -> plural, as the CRDs name them.
PLURALS = {"PodChaos": "podchaos", "NetworkChaos": "networkchaos", "StressChaos": "stresschaos"}
CHAOS_CRDS = tuple(f"{plural}.{CHAOS_GROUP}" for plural in PLURALS.values())
#: What the Kubernetes backend applies, and as which kind.
_KINDS = {
    "kill": "PodChaos",
    "restart": "PodChaos",
    "pause": "NetworkChaos",
    "latency": "NetworkChaos",
    "loss": "NetworkChaos",
    "bandwidth": "NetworkChaos",
    "cpu": "StressChaos",
    "memory": "StressChaos",
}
#: The kinds that are Chaos Mesh objects (the preflight asks for Chaos Mesh only for them).
NEEDS_CHAOS_MESH = frozenset(_KINDS)
#: ``dependency`` is not Chaos Mesh's: the target's own fault hook (see :mod:`._faults`);
#: ``rolling_restart`` neither: a rollout of the agent Deployment (see :mod:`._rollout`).
FAULT_KINDS = frozenset({*_KINDS, "dependency", "rolling_restart"})


def object_name(cluster: Cluster, fault: Fault) -> str:
    """The object's name: the run's and the fault's (``kill``, ``kill-2``), a DNS name."""
    return f"stressbed-{label_value(cluster.run_id)}-{fault.name}"[:63].rstrip("-").lower()


def chaos_object(
    fault: Fault,
    cluster: Cluster,
    pods: list[str],
    *,
    cpu_limit_m: int | None = None,
    grace_s: int = 30,
) -> dict[str, Any]:
    """The Chaos Mesh object that applies ``fault`` to ``pods`` (agent pods in the run's
    namespace, chosen by the caller); ``grace_s``: the pods' terminationGracePeriodSeconds,
    which a restart deletes them with."""
    kind = _KINDS[fault.kind]
    spec: dict[str, Any] = {
        "mode": "all",  # on exactly the pods named below: the seed chose them
        "selector": {"pods": {cluster.namespace: sorted(pods)}},
    }
    if fault.lasting_ms:
        spec["duration"] = _duration(fault.lasting_ms)
    if fault.kind == "kill":
        spec.update(action="pod-kill", gracePeriod=0)
    elif fault.kind == "restart":
        # Chaos Mesh deletes each pod with this grace period: SIGTERM, SIGKILL after it.
        spec.update(action="pod-kill", gracePeriod=grace_s)
    elif fault.kind == "pause":
        spec.update(action="partition", direction="both")
    elif fault.kind == "latency":
        delay = {"latency": _duration(fault.param("latency_ms") or 0)}
        if fault.param("jitter_ms"):
            delay["jitter"] = _duration(fault.param("jitter_ms"))
        spec.update(action="delay", direction="to", delay=delay)
    elif fault.kind == "loss":
        spec.update(
            action="loss", direction="to", loss={"loss": f"{(fault.param('loss') or 0) * 100:g}"}
        )
    elif fault.kind == "bandwidth":
        rate = float(fault.param("rate") or 0)  # bytes per second
        buffer = max(1600, int(rate / 10))  # a tenth of a second's burst, at least a packet
        spec.update(
            action="bandwidth",
            direction="to",
            bandwidth={
                "rate": f"{max(1, round(rate * 8 / 1000))}kbit",
                "limit": max(2 * buffer, int(rate)),
                "buffer": buffer,
            },
        )
    elif fault.kind == "cpu":
        cores = (fault.param("share") or 0.0) * (cpu_limit_m or 1000) / 1000
        workers = max(1, math.ceil(cores))
        load = max(1, min(100, round(100 * cores / workers)))
        spec["stressors"] = {"cpu": {"workers": workers, "load": load}}
    else:  # memory
        mib = max(1, int((fault.param("memory") or 0) // 2**20))
        spec["stressors"] = {"memory": {"workers": 1, "size": f"{mib}MiB"}}
    return {
        "apiVersion": f"{CHAOS_GROUP}/{CHAOS_VERSION}",
        "kind": kind,
        "metadata": {
            "name": object_name(cluster, fault),
            "namespace": cluster.namespace,
            "labels": {
                "app.kubernetes.io/part-of": PART_OF,
                "app.kubernetes.io/component": "fault",
                "stressbed.dev/run": label_value(cluster.run_id),
                "stressbed.dev/fault": fault.name,
            },
        },
        "spec": spec,
    }


def _duration(ms: float) -> str:
    """A Go duration Chaos Mesh parses: "10s", "200ms", "1.5s"."""
    if ms % 1000 == 0:
        return f"{int(ms // 1000)}s"
    return f"{ms:g}ms"
