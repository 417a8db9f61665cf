"""The ``neighbour`` fault on a cluster: a noisy neighbour as a Job of its own in the run's
namespace, scheduled beside the agent pods and outside their cgroups.

The Job runs the runner image (it has Python and stressbed) as one BestEffort pod: no
requests, no limits, so nothing but the node holds it back, as a neighbour the agent did not
choose. Its one container is a small shell that starts the local backend's hogs, the same
programs the local neighbour runs (``python -m stressbed.backends.local._hog``): a CPU burner
per core asked for (every core of the node when none is given), a memory holder, and with
``io=True`` an IO writer on the pod's own emptyDir, which sits on the node's disk beside the
agent pods' own. A required pod affinity to the agent pods' labels (topology
``kubernetes.io/hostname``) puts it on a node where an agent pod runs. It is as restricted as
the runner pods (non-root, read-only root, every capability dropped, an emptyDir at /tmp),
labelled as every object of the run (``app.kubernetes.io/part-of``, ``stressbed.dev/run``), so
the namespace's destroy takes it if stressbed does not; ``activeDeadlineSeconds`` ends it by
itself soon after the fault would have, ``ttlSecondsAfterFinished`` removes it once ended.

:class:`NeighbourJob` creates it, reads its pod (running: applied, on the cluster's clock;
pending past a deadline: skipped, saying why) and deletes it (foreground: its pods first);
:mod:`._faults` drives it at the fault's instants. A BestEffort pod is what the namespace's
LimitRange would give limits and its quota refuse: :func:`check_neighbour` refuses a neighbour
on such a stack before anything is created.
"""

from __future__ import annotations

import math
import shlex

from ...errors import ConfigError
from ...scenario.faults import Fault
from ...stack.spec import StackSpec
from ._cluster import ClusterApi, PodState
from .chaos import object_name
from .manifests import (
    AGENT,
    Cluster,
    Manifest,
    container_security,
    labels,
    pod_security,
    selector,
)

__all__ = [
    "IO_FILE",
    "NEIGHBOUR",
    "NeighbourJob",
    "check_neighbour",
    "neighbour_job",
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


def neighbour_script(fault: Fault) -> str:
    """The shell the neighbour's container runs: its hogs in the background, every one killed
    when it gets SIGTERM (its pod deleted), waited for otherwise."""
    lines = ["trap \"trap '' TERM INT; kill 0; exit 0\" TERM INT"]
    cores = fault.param("cores")
    if cores is None:  # a burner busy all the time on each core of the node
        count, duty = "$(nproc)", "1.000"
    else:  # as the local neighbour: one burner a core at most, all equally busy
        burners = max(1, math.ceil(cores))
        count, duty = str(burners), f"{cores / burners:.3f}"
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
    """The Job of ``fault``'s neighbour beside the agent pods of Deployment ``target``."""
    name = object_name(cluster, fault)
    tagged = {**labels(NEIGHBOUR, cluster, name), "stressbed.dev/fault": fault.name}
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
        "topologyKey": "kubernetes.io/hostname",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": cluster.namespace, "labels": tagged},
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


def check_neighbour(fault: Fault, stack: StackSpec) -> None:
    """A neighbour the run's namespace lets be noisy (ConfigError, exit 2, otherwise): its
    BestEffort pod would be given limits by the stack's LimitRange (default, max) or refused
    by it (min: a request is required), or refused by a quota on CPU or memory."""
    why = ""
    lr, quota = stack.limit_range, stack.quota
    if lr is not None and any(
        getattr(r, kind) is not None
        for r in (lr.default, lr.maximum, lr.minimum)
        for kind in ("cpu_m", "memory")
    ):
        why = "the stack's LimitRange would give it CPU or memory limits, or refuse it"
    elif quota is not None and any(
        getattr(r, kind) is not None
        for r in (quota.requests, quota.limits)
        for kind in ("cpu_m", "memory")
    ):
        why = "the stack's quota would refuse a pod without CPU and memory requests and limits"
    if why:
        raise ConfigError(
            f"faults.{fault.name}",
            fault.label,
            "a stack whose namespace has no LimitRange or quota on CPU or memory, with "
            f"--backend kubernetes: the neighbour is a BestEffort pod in the run's namespace, "
            f"and {why} (`limit_range: null`, `quota: null` in the profile's stack), or "
            "--backend local",
        )


class NeighbourJob:
    """One neighbour fault's Job in the run's namespace, through the Kubernetes API."""

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
        self.name = object_name(cluster, fault)
        self.deleting = False  # its delete was taken: its pods go first, then the Job

    def create(self) -> None:
        """Its Job, ended by the cluster if stressbed does not end it: its time to be
        scheduled, the fault's lasting and a margin."""
        deadline = math.ceil(self.pending_s + self.fault.lasting_ms / 1000) + DEADLINE_MARGIN_S
        body = neighbour_job(
            self.fault, self.cluster, target=self.target, image=self.image, deadline_s=deadline
        )
        self.api.create_job(self.cluster.namespace, body)

    def look(self) -> tuple[PodState | None, str, bool]:
        """Its pod once it runs; else why not, and whether it never will (it ended)."""
        ns = self.cluster.namespace
        pods = self.api.pods(ns, NEIGHBOUR, self.name)
        running = [p for p in pods if p.phase == "Running"]
        if running:
            return running[0], "", False
        if not pods:
            why = f"no pod was made (`kubectl -n {ns} describe job {self.name}`: a quota or Pod "
            return None, why + "Security may have refused it)", False
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
            else f"{max(1, math.ceil(cores))} burner(s) of {cores:g} cores"
        )
        how = f"a BestEffort pod of its own (Job {self.name}) beside the agent pods: {burners}"
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
            "job": self.name,
        }

    def delete(self) -> None:
        """Delete its Job, its pods first (their shell kills its hogs at SIGTERM)."""
        self.api.delete_job(self.cluster.namespace, self.name)
        self.deleting = True

    def gone(self) -> bool:
        """Whether its delete was taken and no pod of it is left."""
        return self.deleting and not self.api.pods(self.cluster.namespace, NEIGHBOUR, self.name)
