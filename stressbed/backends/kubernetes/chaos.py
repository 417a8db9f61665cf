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
    slow_disk IOChaos     action latency {delay, percent: 100} on every file under the agent
                          container's data volume (volumePath /tmp, path /tmp/**/*): each
                          read and write delayed; IOChaos has no bandwidth, so a slow_disk
                          needs a latency here (a rate alone is refused, one with a latency
                          is said not applied)

The objects are data here (:func:`chaos_object`), and so are the instants Chaos Mesh records
of them (:func:`applied_at`, :func:`recovered_at`); :mod:`._faults` creates and deletes them
at the fault's instants and reads those records back. ``dependency`` (the
target's fault hook), ``rolling_restart`` (a rollout of the Deployment, :mod:`._rollout`) and
``neighbour`` (a Job in a namespace of its own, beside the agent pods, :mod:`._neighbour`)
need no Chaos Mesh.
``io`` is not applied: StressChaos starts stress-ng in the target's cgroup and PID namespace
but not its mount namespace (an IO hog would write chaos-daemon's filesystem, not the pod's
volume), and its ``stressngStressors`` never reach chaos-daemon in 2.8.3.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...scenario.faults import Fault
from .manifests import DATA_PATH, PART_OF, Cluster, label_value

__all__ = [
    "CHAOS_CRDS",
    "CHAOS_GROUP",
    "CHAOS_MESH_VERSION",
    "CHAOS_VERSION",
    "FAULT_KINDS",
    "NEEDS_CHAOS_MESH",
    "PLURALS",
    "applied_at",
    "chaos_object",
    "object_name",
    "recovered_at",
]

#: The Chaos Mesh release the objects are written (and tested) against.
CHAOS_MESH_VERSION = "2.8.3"
CHAOS_GROUP = "chaos-mesh.org"
CHAOS_VERSION = "v1alpha1"
#: kind -> plural, as the CRDs name them.
PLURALS = {
    "PodChaos": "podchaos",
    "NetworkChaos": "networkchaos",
    "StressChaos": "stresschaos",
    "IOChaos": "iochaos",
}
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
    "slow_disk": "IOChaos",
}
#: The kinds that are Chaos Mesh objects (the preflight asks for Chaos Mesh only for them).
NEEDS_CHAOS_MESH = frozenset(_KINDS)
#: ``dependency`` is not Chaos Mesh's: the target's own fault hook (see :mod:`._faults`);
#: ``rolling_restart`` neither: a rollout of the agent Deployment (see :mod:`._rollout`); nor
#: ``neighbour``: a Job beside the agent pods (see :mod:`._neighbour`).
FAULT_KINDS = frozenset({*_KINDS, "dependency", "rolling_restart", "neighbour"})


def object_name(cluster: Cluster, fault: Fault) -> str:
    """The object's name: the run's and the fault's (``kill``, ``kill-2``, ``slow-disk``), a
    DNS label (lower case, digits and ``-``: a fault's ``_`` and a run's ``.`` made ``-``)."""
    name = re.sub(r"[^a-z0-9-]", "-", f"stressbed-{cluster.run_id}-{fault.name}".lower())
    return name[:63].strip("-")


def chaos_object(
    fault: Fault,
    cluster: Cluster,
    pods: list[str],
    *,
    cpu_limit_m: int | None = None,
    grace_s: int = 30,
    container: str = "agent",
) -> dict[str, Any]:
    """The Chaos Mesh object that applies ``fault`` to ``pods`` (agent pods in the run's
    namespace, chosen by the caller); ``grace_s``: the pods' terminationGracePeriodSeconds,
    which a restart deletes them with; ``container``: the agent container's name (an IOChaos
    acts on its volume)."""
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
    elif fault.kind == "slow_disk":
        # A FUSE layer (toda) over the data volume in the container's mount namespace: every
        # operation on a file under it waits ``delay`` (the rate, if any, is not applied).
        spec.update(
            action="latency",
            delay=_duration(fault.param("delay_ms") or 0),
            percent=100,
            volumePath=DATA_PATH,
            path=f"{DATA_PATH}/**/*",
            containerNames=[container],
        )
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


# -- what Chaos Mesh records of an object --------------------------------------------------


def _records(found: dict[str, Any] | None) -> list[dict[str, Any]]:
    status = (found or {}).get("status") or {}
    return list((status.get("experiment") or {}).get("containerRecords") or [])


def _on(record: dict[str, Any], namespace: str, pods: Sequence[str]) -> str | None:
    """The pod a record is of ("ns/pod" or "ns/pod/container"), if one of ``pods``."""
    parts = str(record.get("id", "")).split("/")
    if len(parts) >= 2 and parts[0] == namespace and parts[1] in pods:
        return parts[1]
    return None


def _instants(
    found: dict[str, Any] | None, namespace: str, pods: Sequence[str], operation: str
) -> tuple[dict[str, float], str]:
    """Per pod, the earliest ``operation`` that succeeded; and the last failure said."""
    seen: dict[str, float] = {}
    failed = ""
    for record in _records(found):
        if record.get("selectorKey", ".") != ".":
            continue  # a NetworkChaos target's pods: nothing was done to them
        pod = _on(record, namespace, pods)
        if pod is None:
            continue
        for event in record.get("events") or []:
            if event.get("operation") != operation:
                continue
            if event.get("type") == "Succeeded":
                at = _timestamp(event.get("timestamp"))
                if at is not None:
                    seen[pod] = min(seen.get(pod, at), at)
            elif event.get("type") == "Failed":
                failed = str(event.get("message") or "failed")[:200]
    return seen, failed


def applied_at(
    found: dict[str, Any] | None, namespace: str, pods: Sequence[str]
) -> tuple[float | None, str]:
    """When Chaos Mesh applied the object to every one of ``pods`` (its earliest Apply), or
    None and the last failure it recorded."""
    seen, failed = _instants(found, namespace, pods, "Apply")
    if not pods or any(p not in seen for p in pods):
        return None, failed
    return min(seen.values()), failed


def recovered_at(found: dict[str, Any] | None, namespace: str, pods: Sequence[str]) -> float | None:
    """When the last of ``pods`` was recovered (its Recover), or None while one is not."""
    seen, _ = _instants(found, namespace, pods, "Recover")
    if not pods or any(p not in seen for p in pods):
        return None
    return max(seen.values())


def _timestamp(text: object) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
