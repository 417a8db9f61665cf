"""The ``neighbour`` fault on a cluster: a noisy neighbour as another tenant's would be, a
BestEffort pod in a namespace of its own, scheduled beside the agent pods and outside their
cgroups.

At the fault's instant a namespace is made for it, ``<run's namespace>-nb-<fault>`` (a DNS
label: cut with a hash of the whole when longer than 63), labelled as every object of the
run (``app.kubernetes.io/part-of``, ``stressbed.dev/run``, the component ``neighbour``) and,
as the run's own, for Pod Security Admission ``restricted``, which its pod meets. It is owned
by the run's namespace (an ``ownerReference`` with that namespace's uid), so the cluster's
garbage collector deletes it once the run's namespace is gone, whatever became of stressbed;
:func:`._namespaces.sweep_neighbours` finds the ones left by their labels. No LimitRange or
quota of the run's stack is in it: nothing gives the pod limits or refuses it.

In it, a Job runs the runner image (it has Python and stressbed) as one BestEffort pod: no
requests, no limits, so nothing but the node holds it back, as a neighbour the agent did not
choose. Its one container is a small shell that starts the local backend's hogs, the same
programs the local neighbour runs (``python -m stressbed.backends.local._hog``): a CPU burner
per core asked for (every core of the node when none is given), a memory holder, and with
``io=True`` an IO writer on the pod's own emptyDir, which sits on the node's disk beside the
agent pods' own. A required pod affinity to the agent pods' labels in the run's namespace
(``namespaces``, topology ``kubernetes.io/hostname``) puts it on a node where an agent pod
runs. It is as restricted as the runner pods (non-root, read-only root, every capability
dropped, seccomp ``RuntimeDefault``, an emptyDir at /tmp); ``activeDeadlineSeconds`` ends it
by itself soon after the fault would have, ``ttlSecondsAfterFinished`` removes it once ended.

:class:`Neighbour` creates the namespace and the Job, reads its pod (running: applied, on the
cluster's clock; pending past a deadline: skipped, saying why) and deletes the namespace (its
Job and pod with it); :mod:`._faults` drives it at the fault's instants.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex

from ...scenario.faults import Fault
from ._cluster import ClusterApi, PodState
from .chaos import object_name
from .manifests import (
    AGENT,
    Cluster,
    Manifest,
    container_security,
    labels,
    pod_security,
    restricted,
    selector,
)

__all__ = [
    "IO_FILE",
    "NEIGHBOUR",
    "Neighbour",
    "neighbour_job",
    "neighbour_namespace",
    "neighbour_namespace_name",
    "neighbour_script",
]

#: The neighbour pods' component label.
NEIGHBOUR = "neighbour"
#: The IO writer's file, on the pod's own emptyDir (the node's disk).
IO_FILE = "/tmp/stressbed-neighbour-io"
#: The hogs, as the local backend runs them.
HOG = "python -m stressbed.backends.local._hog"
#: Its Job ends by itself this long after the fault would have (stressbed gone, or stuck).
DEADLINE_MARGIN_S = 30
#: An ended Job (its deadline past) is removed this long after.
TTL_S = 60
#: Its pod's shell kills every hog at SIGTERM; SIGKILL after this.
GRACE_S = 5
RUNNER_USER = 10001
#: A namespace's name is a DNS label: at most this long.
DNS_LABEL = 63


def neighbour_namespace_name(cluster: Cluster, fault: Fault) -> str:
    """``<run's namespace>-nb-<fault>`` as a DNS label (lower case, digits and ``-``); one
    longer than 63 is cut, and ends in a hash of the whole name, so that two faults' stay
    apart."""
    whole = re.sub(r"[^a-z0-9-]", "-", f"{cluster.namespace}-nb-{fault.name}".lower())
    if len(whole) <= DNS_LABEL:
        return whole.strip("-")
    digest = hashlib.sha256(whole.encode()).hexdigest()[:8]
    return f"{whole[: DNS_LABEL - len(digest) - 1].strip('-')}-{digest}"


def _tagged(fault: Fault, cluster: Cluster) -> dict[str, str]:
    """The labels of the neighbour's namespace, Job and pod: the run's, and the fault's."""
    return {
        **labels(NEIGHBOUR, cluster, object_name(cluster, fault)),
        "stressbed.dev/fault": fault.name,
    }


def neighbour_namespace(fault: Fault, cluster: Cluster, *, owner_uid: str) -> Manifest:
    """The namespace of ``fault``'s neighbour, owned by the run's (uid ``owner_uid``): the
    cluster deletes it once the run's namespace is gone."""
    owner = {"apiVersion": "v1", "kind": "Namespace", "name": cluster.namespace, "uid": owner_uid}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": neighbour_namespace_name(cluster, fault),
            "labels": {**restricted(), **_tagged(fault, cluster)},
            "ownerReferences": [owner],
        },
    }


def _burners(cores: float) -> int:
    """As the local neighbour: one burner a core at most, all equally busy."""
    return max(1, math.ceil(cores))


def neighbour_script(fault: Fault) -> str:
    """The shell the neighbour's container runs: its hogs in the background, every one killed
    when it gets SIGTERM (its pod deleted), waited for otherwise."""
    lines = ["trap \"trap '' TERM INT; kill 0; exit 0\" TERM INT"]
    cores = fault.param("cores")
    if cores is None:  # a burner busy all the time on each core of the node
        count, duty = "$(nproc)", "1.000"
    else:
        count, duty = str(_burners(cores)), f"{cores / _burners(cores):.3f}"
    lines.append(f'i=0; while [ "$i" -lt {count} ]; do {HOG} cpu {duty} & i=$((i + 1)); done')
    held = fault.param("memory")
    if held:
        lines.append(f"{HOG} memory {int(held)} &")
    if fault.param("io"):
        lines.append(f"{HOG} io {shlex.quote(IO_FILE)} &")
    lines.append("wait")
    return "\n".join(lines) + "\n"


def neighbour_job(
    fault: Fault, cluster: Cluster, *, target: str, image: str, deadline_s: int
) -> Manifest:
    """The Job of ``fault``'s neighbour, in its own namespace, beside the agent pods of
    Deployment ``target`` in the run's."""
    name, tagged = object_name(cluster, fault), _tagged(fault, cluster)
    container = {
        "name": NEIGHBOUR,
        "image": image,
        "imagePullPolicy": cluster.image_pull_policy,
        "command": ["/bin/sh", "-c", neighbour_script(fault)],
        "env": [{"name": "HOME", "value": "/tmp"}],
        # No resources: a BestEffort pod, held back by nothing but the node.
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    beside = {
        "labelSelector": {"matchLabels": selector(AGENT, target)},
        "namespaces": [cluster.namespace],  # the agent pods are in the run's namespace
        "topologyKey": "kubernetes.io/hostname",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": neighbour_namespace_name(cluster, fault),
            "labels": tagged,
        },
        "spec": {
            "backoffLimit": 0,  # a neighbour that failed is not started again
            "activeDeadlineSeconds": deadline_s,
            "ttlSecondsAfterFinished": TTL_S,
            "template": {
                "metadata": {"labels": tagged},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": GRACE_S,
                    "securityContext": pod_security(RUNNER_USER),
                    "affinity": {
                        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [beside]}
                    },
                    "containers": [container],
                    # The IO writer's file is 32 MiB: room for it, and a bound on the disk.
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }


class Neighbour:
    """One neighbour fault's namespace and Job, through the Kubernetes API."""

    def __init__(
        self,
        api: ClusterApi,
        cluster: Cluster,
        fault: Fault,
        *,
        target: str,
        image: str,
        pending_s: float,
    ) -> None:
        self.api = api
        self.cluster = cluster
        self.fault = fault
        self.target = target
        self.image = image
        self.pending_s = pending_s
        self.name = object_name(cluster, fault)  # its Job's
        self.namespace = neighbour_namespace_name(cluster, fault)
        self.creating = ""  # what it was creating, for a refusal to name

    def create(self) -> None:
        """Its namespace, owned by the run's, then its Job in it, ended by the cluster if
        stressbed does not end it: its time to be scheduled, the fault's lasting and a
        margin."""
        self.creating = f"namespace {self.namespace}"
        run = self.api.namespace(self.cluster.namespace)
        if run is None or not run.uid:
            raise LookupError(f"the run's namespace {self.cluster.namespace} was not found")
        self.api.create_namespace(neighbour_namespace(self.fault, self.cluster, owner_uid=run.uid))
        self.creating = f"Job {self.name}"
        deadline = math.ceil(self.pending_s + self.fault.lasting_ms / 1000) + DEADLINE_MARGIN_S
        body = neighbour_job(
            self.fault, self.cluster, target=self.target, image=self.image, deadline_s=deadline
        )
        self.api.create_job(self.namespace, body)

    def look(self) -> tuple[PodState | None, str, bool]:
        """Its pod once it runs; else why not, and whether it never will (it ended)."""
        ns = self.namespace
        pods = self.api.pods(ns, NEIGHBOUR, self.name)
        running = [p for p in pods if p.phase == "Running"]
        if running:
            return running[0], "", False
        if not pods:
            why = f"no pod was made (`kubectl -n {ns} describe job {self.name}`: Pod Security "
            return None, why + "or an admission policy may have refused it)", False
        pod = pods[0]
        if pod.phase in ("Succeeded", "Failed"):
            said = pod.terminated or pod.reason or "no reason given"
            return None, f"its pod {pod.name} {pod.phase.lower()} ({said})", True
        if pod.unschedulable:
            return None, f"its pod {pod.name} was not scheduled: {pod.unschedulable}", False
        if pod.waiting:
            said = f"{pod.waiting}: {pod.message}" if pod.message else pod.waiting
            return None, f"its pod {pod.name} is waiting ({said})", False
        return None, f"its pod {pod.name} is {pod.phase}", False

    def applied(self, pod: PodState) -> dict[str, object]:
        """What its ``fault-applied`` says besides the instant: how, where, beside whom."""
        fault = self.fault
        cores, held = fault.param("cores"), fault.param("memory")
        burners = (
            "a burner on every core of the node"
            if cores is None
            else f"{_burners(cores)} burner(s) of {cores:g} cores"
        )
        how = (
            f"a BestEffort pod in a namespace of its own ({self.namespace}, Job {self.name}) "
            f"beside the agent pods: {burners}"
        )
        how += f", {held / 2**20:g}Mi held" if held else ""
        how += f", writing {IO_FILE} on the node's disk" if fault.param("io") else ""
        node = pod.node or "unknown"
        try:
            agents = self.api.pods(self.cluster.namespace, AGENT, self.target)
            beside = sorted(p.name for p in agents if pod.node and p.node == pod.node)
        except Exception:  # said without them: the instant matters more
            beside = []
        return {
            "how": how,
            "scope": f"node {node}, outside the agent pods' cgroups",
            "node": node,
            "beside": beside,
            "namespace": self.namespace,
            "job": self.name,
        }

    def delete(self) -> None:
        """Delete its namespace: its Job and pod go first (their shell kills its hogs at
        SIGTERM)."""
        self.api.delete_namespace(self.namespace)

    def pods_gone(self) -> bool:
        """Whether no pod of it is left."""
        return not self.api.pods(self.namespace, NEIGHBOUR, self.name)

    def gone(self) -> bool:
        """Whether its namespace is gone; one not being deleted is deleted again (a delete
        that did not take)."""
        found = self.api.namespace(self.namespace)
        if found is None:
            return True
        if found.phase != "Terminating":
            self.delete()
        return False
