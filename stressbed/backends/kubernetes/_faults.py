"""A scenario's faults on a cluster: each a Chaos Mesh object (:mod:`.chaos`) created at the
fault's instant, deleted at its end (Chaos Mesh's finalizer then recovers the pods), on a
thread of its own, through the Kubernetes API from stressbed's side.

The instants recorded are Chaos Mesh's own: ``fault-applied`` is the earliest ``Apply``
event of the object's records (``status.experiment.containerRecords[].events[]``), on the
cluster's clock, once every chosen pod has one; ``fault-ended`` the latest ``Recover`` (or
the object gone). A fault Chaos Mesh does not apply in time is ``fault-skipped``, saying why,
and its object deleted. At teardown every object still there is deleted and waited for.

A ``restart`` is a PodChaos ``pod-kill`` with the pods' own grace period (each chosen pod
deleted gracefully; its ReplicaSet makes a new one at once). A ``rolling_restart`` is no Chaos
Mesh object but the agent Deployment's own rollout (:mod:`._rollout`): ``fault-applied`` when
the API server took the patch, ``fault-ended`` when the rollout was seen done (or stopped).

A ``neighbour`` is no Chaos Mesh object but a Job in a namespace of its own, beside the agent
pods (:mod:`._neighbour`): ``fault-applied`` when its pod runs (its container's start, on the
cluster's clock), ``fault-ended`` when stressbed deleted its namespace (said once its pods are
gone), done once the namespace is gone; one whose pod does not run in time (not scheduled: no
node beside an agent pod has room) is ``fault-skipped``, saying why, and its namespace
deleted. At teardown one still there is named ``namespace/<name>``.

A ``dependency`` fault is the target's own fault hook (the StackSpec's ``fault_hook``), called
on every agent pod (and on each one started while it lasts) through the API server's pod
proxy with the run's token; ended through the hook at the fault's end or at teardown. Its
instants are stressbed's: when the pods' hooks answered.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...scenario.faults import Fault
from ...stack.spec import FaultHook
from ._cluster import ClusterApi, ProxyUnreachable
from ._neighbour import Neighbour
from ._proxy import ProxyCheck
from ._rollout import SCHEDULING_S, DeploymentRollout, Refused
from .chaos import PLURALS, applied_at, chaos_object, recovered_at
from .manifests import Cluster

__all__ = ["ChaosFaults", "PodHook", "applied_at", "recovered_at"]

TICK_S = 0.5
#: A hooked fault is started for this much longer than it lasts: if stressbed is gone, the
#: target ends it by itself soon after.
HOOK_MARGIN_S = 30


@dataclass(frozen=True)
class PodHook:
    """The agent pods' fault hook: as the spec declares it, the run's token, the pods' port."""

    spec: FaultHook
    token: str = field(repr=False)
    port: int = 8080


@dataclass
class _Armed:
    fault: Fault
    at: float
    end: float
    name: str = ""
    plural: str = ""
    pods: list[str] = field(default_factory=list)
    created: float | None = None  # when stressbed created the object (its clock)
    applied: bool = False
    deleted: float | None = None  # when stressbed deleted it
    ended: bool = False  # fault-ended said
    done: bool = False  # the object is gone (or was never made)
    problem: str = ""
    how: str = ""  # what the fault is, as said when applied
    hooked: str = ""  # a dependency: the fault hook's kind
    restarts: dict[str, int] = field(default_factory=dict)  # pod -> its restarts when hooked
    rollout: DeploymentRollout | None = None  # a rolling restart under way
    neighbour: Neighbour | None = None  # a neighbour's namespace and Job
    reason: str = ""  # why it was deleted (a neighbour: its end, teardown, stopped early)


class ChaosFaults:
    """The scheduled faults of one run against one namespace's agent pods."""

    def __init__(
        self,
        api: ClusterApi,
        cluster: Cluster,
        target: str,
        event: Callable[..., None],
        *,
        cpu_limit_m: int | None = None,
        hook: PodHook | None = None,
        proxy: ProxyCheck | None = None,
        apply_timeout_s: float = 60.0,
        delete_timeout_s: float = 60.0,
        grace_s: int = 30,
        rollout_deadline_s: float = 120.0 + SCHEDULING_S,
        runner_image: str = "stressbed-runner:latest",
        neighbour_pending_s: float = SCHEDULING_S,
    ) -> None:
        self._api = api
        self._cluster = cluster
        self._target = target
        self._event = event
        self._cpu_limit_m = cpu_limit_m
        self._hook = hook
        self._proxy = proxy
        self._apply_timeout_s = apply_timeout_s
        self._delete_timeout_s = delete_timeout_s
        self._grace_s = grace_s  # the agent pods' terminationGracePeriodSeconds
        # How long a rolling restart may go without progress (a new pod not ready).
        self._rollout_deadline_s = rollout_deadline_s
        self._runner_image = runner_image  # a neighbour's image: Python and stressbed's hogs
        # How long a neighbour's pod may take to run (scheduled, its image pulled).
        self._neighbour_pending_s = neighbour_pending_s
        self._armed: list[_Armed] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self, faults: Sequence[Fault], started_at: float) -> None:
        """Schedule ``faults`` from ``started_at`` (unix time: the fleet's release)."""
        with self._lock:
            for item in faults:
                at = started_at + item.at_ms / 1000
                self._armed.append(_Armed(item, at, at + item.lasting_ms / 1000))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # an API blip: the next tick tries again
                self.tick()
            self._stop.wait(TICK_S)

    def tick(self) -> None:
        """Create what is due, read what Chaos Mesh did, delete what is over."""
        now = time.time()
        with self._lock:
            armed = [a for a in self._armed if not a.done]
        for item in armed:
            # One fault's API trouble (a blip, a permission missing) holds up no other.
            with contextlib.suppress(Exception):
                self._tick_one(item, now)

    def _tick_one(self, item: _Armed, now: float) -> None:
        if item.fault.kind == "dependency":
            self._tick_hooked(item, now)
        elif item.fault.kind == "rolling_restart":
            self._tick_rollout(item, now)
        elif item.fault.kind == "neighbour":
            self._tick_neighbour(item, now)
        elif item.created is None and now >= item.at:
            self._create(item)
        elif item.created is not None and not item.applied and item.deleted is None:
            self._read_applied(item, now)
        elif item.applied and item.deleted is None and now >= item.end:
            self._delete(item, now)
        elif item.deleted is not None:
            self._read_recovered(item, "its end" if item.fault.lasting_ms else "")

    def undo_all(self) -> list[str]:
        """Stop scheduling, delete every object still there and wait for each to go
        (bounded); the names of those still there (a neighbour's: ``namespace/<name>``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            left = [a for a in self._armed if a.created is not None and not a.done]
        for item in [a for a in left if a.fault.kind == "dependency"]:
            self._end_hooked(item, "teardown")
            left.remove(item)
        for item in [a for a in left if a.fault.kind == "rolling_restart"]:
            # Nothing to undo: the Deployment goes with the run's namespace.
            self._end_rollout(item, "teardown")
            left.remove(item)
        now = time.time()
        for item in left:
            if item.deleted is None and item.fault.kind == "neighbour":
                self._delete_neighbour(item, now, "teardown")
            elif item.deleted is None:
                self._delete(item, now)
        deadline = time.monotonic() + self._delete_timeout_s
        while left and time.monotonic() < deadline:
            for item in list(left):
                with contextlib.suppress(Exception):
                    if item.fault.kind == "neighbour":
                        self._read_neighbour_gone(item)
                    else:
                        self._read_recovered(item, "teardown")
                if item.done:
                    left.remove(item)
            if left:
                time.sleep(TICK_S)
        return [item.name for item in left]

    # -- one fault ---------------------------------------------------------------------

    def _create(self, item: _Armed) -> None:
        fault, ns = item.fault, self._cluster.namespace
        running = sorted(
            p.name for p in self._api.pods(ns, "agent", self._target) if p.phase == "Running"
        )
        count = fault.replicas or len(running)
        if not running or len(running) < count:
            self._skip(item, f"{len(running)} agent pod(s) running, the fault needs {count}")
            return
        item.pods = sorted(random.Random(fault.seed).sample(running, count))
        body = chaos_object(
            fault,
            self._cluster,
            item.pods,
            cpu_limit_m=self._cpu_limit_m,
            grace_s=self._grace_s,
            container=self._target,
        )
        spec = body["spec"]
        item.name, item.plural = body["metadata"]["name"], PLURALS[body["kind"]]
        item.how = f"Chaos Mesh {body['kind']} {spec.get('action', 'stressors')}"
        if fault.kind == "restart":
            item.how += f", gracePeriod {self._grace_s} s (the ReplicaSet makes new pods at once)"
        if fault.kind == "slow_disk":
            item.how += f" {spec['delay']} on each operation under {spec['volumePath']}"
            if fault.param("bps") is not None:
                item.how += (
                    "; its rate is not applied on Kubernetes (IOChaos delays each operation, "
                    "it has no bandwidth)"
                )
        item.created = time.time()
        try:
            self._api.create_chaos(ns, item.plural, body)
        except Exception as exc:  # forbidden, no such CRD, a webhook's refusal, a timeout
            # A create that timed out may still have been made: deleted, and followed until
            # it is gone (a refused one is gone at the first look).
            self._skip(item, f"Chaos Mesh refused it: {_said(exc)}", gone=False)
            self._delete(item, time.time())

    def _read_applied(self, item: _Armed, now: float) -> None:
        found = self._api.get_chaos(self._cluster.namespace, item.plural, item.name)
        instant, problem = applied_at(found, self._cluster.namespace, item.pods)
        if instant is None:
            item.problem = problem or item.problem
            if item.created is not None and now - item.created > self._apply_timeout_s:
                why = item.problem or "no record of it on the pods"
                self._skip(
                    item,
                    f"Chaos Mesh did not apply it in {self._apply_timeout_s:g} s: {why}",
                    gone=False,  # its object is deleted, and followed until it is gone
                )
                self._delete(item, now)
            return
        self._say_applied(item, instant, chaos_object=f"{item.plural}/{item.name}")
        if not item.fault.lasting_ms:  # a kill is done once applied: nothing to recover
            self._delete(item, now)

    def _delete(self, item: _Armed, now: float) -> None:
        item.deleted = now
        with contextlib.suppress(Exception):  # gone already, or tried again at teardown
            self._api.delete_chaos(self._cluster.namespace, item.plural, item.name)

    def _read_recovered(self, item: _Armed, reason: str) -> None:
        """Said ended at Chaos Mesh's Recover (or once the object is gone); done once gone."""
        found = self._api.get_chaos(self._cluster.namespace, item.plural, item.name)
        if found is not None:
            instant = recovered_at(found, self._cluster.namespace, item.pods)
            if instant is not None:
                self._say_ended(item, instant, reason)
            with contextlib.suppress(Exception):  # a delete that did not take: again
                self._api.delete_chaos(self._cluster.namespace, item.plural, item.name)
            return
        self._say_ended(item, item.deleted or time.time(), reason)
        item.done = True

    def _say_applied(self, item: _Armed, instant: float, **extra: Any) -> None:
        item.applied = True
        self._event(
            "fault-applied",
            t=instant,
            fault=item.fault.name,
            fault_kind=item.fault.kind,
            replicas=list(item.pods),
            how=item.how,
            label=item.fault.label,
            **extra,
        )

    def _say_ended(self, item: _Armed, instant: float, reason: str) -> None:
        if item.ended or not (item.applied and item.fault.lasting_ms):
            return
        item.ended = True
        how = "the Chaos Mesh object deleted: its finalizer recovered the pods"
        self._say_fault_ended(item, instant, how, reason or "its end")

    def _say_fault_ended(
        self, item: _Armed, instant: float, how: str, reason: str, **extra: Any
    ) -> None:
        """The ``fault-ended`` event of every kind: when, on which pods, how, and why."""
        self._event(
            "fault-ended",
            t=instant,
            fault=item.fault.name,
            fault_kind=item.fault.kind,
            replicas=list(item.pods),
            **extra,
            how=how,
            reason=reason,
        )

    # -- a rolling restart: the Deployment's own rollout ------------------------------

    def _tick_rollout(self, item: _Armed, now: float) -> None:
        if item.created is None and now >= item.at:
            max_unavailable = int(item.fault.param("max_unavailable") or 1)
            rollout = DeploymentRollout(
                self._api,
                self._cluster.namespace,
                self._target,
                max_unavailable,
                self._rollout_deadline_s,
            )
            pods = self._running()  # before anything is marked: a failed list is tried again
            item.created = time.time()
            try:
                rollout.start(item.created)
            except Refused as exc:
                self._skip(item, str(exc))
                return
            except Exception as exc:  # forbidden, gone, a timeout: the rollout is not ours
                self._skip(item, f"Deployment {self._target} was not patched: {_said(exc)}")
                return
            item.rollout, item.pods = rollout, pods
            item.how = (
                f"a rollout restart of Deployment {self._target} (kubectl.kubernetes.io/"
                f"restartedAt), maxUnavailable {max_unavailable}, maxSurge 0"
            )
            self._say_applied(item, time.time())
        elif item.rollout is not None and not item.done:
            over = item.rollout.tick()
            if over == "done":
                self._end_rollout(item, "every replica restarted")
            elif over:
                self._end_rollout(item, f"stopped: {over}")

    def _end_rollout(self, item: _Armed, reason: str) -> None:
        item.done = item.ended = True
        try:
            now = self._running()
        except Exception:  # said without them: the fault's end matters more
            now = []
        how = "the Deployment rolled out" if reason.startswith("every") else "it stopped there"
        self._say_fault_ended(item, time.time(), how, reason, pods=now)

    # -- a neighbour: a Job in a namespace of its own, beside the agent pods ------------

    def _tick_neighbour(self, item: _Armed, now: float) -> None:
        job = item.neighbour
        if job is None:
            if now >= item.at:
                self._start_neighbour(item)
            return
        if item.deleted is not None:
            self._read_neighbour_gone(item)
            return
        pod, why, over = job.look()
        waited = now - (item.created or now)
        if not item.applied and pod is not None:
            said = job.applied(pod)
            item.how = str(said.pop("how"))
            # Its container's start, on the cluster's clock (whole seconds, as Chaos Mesh's).
            self._say_applied(item, pod.started or time.time(), **said)
        elif not item.applied and (over or waited > self._neighbour_pending_s or now >= item.end):
            self._skip(item, f"its pod was not running after {waited:.0f} s: {why}", gone=False)
            self._delete_neighbour(item, now, "")
        elif item.applied and now >= item.end:
            self._delete_neighbour(item, now, "its end")
        elif item.applied and pod is None:
            self._delete_neighbour(item, now, f"it stopped before its end: {why}")

    def _start_neighbour(self, item: _Armed) -> None:
        job = Neighbour(
            self._api,
            self._cluster,
            item.fault,
            target=self._target,
            image=self._runner_image,
            pending_s=self._neighbour_pending_s,
        )
        item.neighbour, item.name = job, f"namespace/{job.namespace}"
        item.created = time.time()
        try:
            job.create()
        except Exception as exc:  # forbidden, invalid, a timeout (it may have been made)
            self._skip(item, f"its {job.creating} was not created: {_said(exc)}", gone=False)
            self._delete_neighbour(item, time.time(), "")

    def _delete_neighbour(self, item: _Armed, now: float, reason: str) -> None:
        item.deleted, item.reason = now, reason
        assert item.neighbour is not None
        with contextlib.suppress(Exception):  # tried again until it is gone
            item.neighbour.delete()

    def _read_neighbour_gone(self, item: _Armed) -> None:
        """Said ended at its deletion once its pods are gone (its hogs got SIGTERM); done once
        its namespace is gone."""
        job = item.neighbour
        assert job is not None
        gone = job.gone()  # deleted again if the delete did not take
        if item.applied and not item.ended and (gone or job.pods_gone()):
            item.ended = True
            how = "its namespace deleted: the neighbour's Job, pod and hogs gone"
            self._say_fault_ended(item, item.deleted or time.time(), how, item.reason)
        item.done = gone

    # -- a dependency, through the target's fault hook ---------------------------------

    def _tick_hooked(self, item: _Armed, now: float) -> None:
        if item.created is None and now >= item.at:
            try:
                self._start_hooked(item)
            except Exception as exc:  # the pods not listed: tried again until its end
                if now < item.end:
                    raise
                self._skip(item, f"the agent pods could not be listed: {_said(exc)}")
        elif item.applied and not item.done and now >= item.end:
            self._end_hooked(item, "its end")
        elif item.applied and not item.done:
            started = self._call_hooks(item, self._running(new_for=item))
            if started:
                self._event("fault-extended", fault=item.fault.name, replicas=started)

    def _running(self, new_for: _Armed | None = None) -> list[str]:
        """The agent pods running and ready; with ``new_for``, only those its hook has not
        reached (new pods, and pods whose container restarted since: a fresh process)."""
        ns = self._cluster.namespace
        pods = [p for p in self._api.pods(ns, "agent", self._target) if p.phase == "Running"]
        if new_for is None:
            return sorted(p.name for p in pods)
        seen = new_for.restarts
        return sorted(
            p.name for p in pods if p.ready and (p.name not in seen or p.restarts > seen[p.name])
        )

    def _call_hooks(
        self, item: _Armed, pods: Sequence[str], refused: dict[str, str] | None = None
    ) -> list[str]:
        """Start the hooked fault on ``pods`` for the rest of its time; those that took it
        (why each other one did not, into ``refused``)."""
        assert self._hook is not None
        hook, kind = self._hook, item.hooked
        left = max(1.0, item.end - time.time()) + HOOK_MARGIN_S
        request = ("POST", hook.spec.path, {"kind": kind, "duration_s": round(left, 1)})
        took = []
        for pod in pods:
            said = self._call_hook(pod, request)
            if said is None:
                took.append(pod)
                if pod not in item.pods:
                    item.pods.append(pod)
            elif refused is not None:
                refused[pod] = said
        try:
            found = self._api.pods(self._cluster.namespace, "agent", self._target)
            restarts = {p.name: p.restarts for p in found}
        except Exception:  # read again when it is next extended; taken is taken
            restarts = {}
        item.restarts.update({pod: restarts.get(pod, 0) for pod in took})
        return took

    def _call_hook(self, pod: str, request: tuple[str, str, dict[str, Any] | None]) -> str | None:
        """One call to ``pod``'s fault hook: None when it answered 2xx, else why not (a call
        that raised included: one pod's trouble holds up no other)."""
        assert self._hook is not None
        hook = self._hook
        try:
            said = self._api.hook(
                self._cluster.namespace, pod, hook.port, request, hook.spec.headers(hook.token)
            )
        except ProxyUnreachable as exc:
            if self._proxy is not None:
                self._proxy.refused(pod, hook.port, str(exc), at_once=True)
            fix = f"; {self._proxy.fix()}" if self._proxy is not None else ""
            return f"the API server's pod proxy did not reach it ({exc}){fix}"
        except Exception as exc:
            return f"{type(exc).__name__}: {_said(exc)}"
        if said is None and self._proxy is not None:
            self._proxy.reached(pod)
        return said

    def _start_hooked(self, item: _Armed) -> None:
        hook = self._hook
        kind = hook.spec.kind_of(str(item.fault.param("target"))) if hook is not None else None
        if kind is None:
            self._skip(item, "the stack's fault hook does not inject it")
            return
        running = self._running()  # before anything is marked: a failed list is tried again
        item.created = time.time()
        item.hooked = kind
        refused: dict[str, str] = {}
        if not self._call_hooks(item, running, refused):
            item.done = True
            why = "".join(f"; {pod}: {said}" for pod, said in sorted(refused.items())[:1])
            self._skip(item, f"no agent pod's fault hook took it ({len(running)} running){why}")
            return
        item.how = f"the target's fault hook ({kind}), through the API server's pod proxy"
        self._say_applied(item, time.time())

    def _end_hooked(self, item: _Armed, reason: str) -> None:
        assert self._hook is not None
        hook = self._hook
        request = ("DELETE", f"{hook.spec.path}/{item.hooked}", None)
        ended = [pod for pod in item.pods if self._call_hook(pod, request) is None]
        item.done = item.ended = True
        self._say_fault_ended(
            item, time.time(), "ended through the fault hook", reason, ended=ended
        )

    def _skip(self, item: _Armed, reason: str, *, gone: bool = True) -> None:
        """Not applied, and said so; ``gone``: nothing of it is left in the cluster."""
        item.done = gone
        self._event(
            "fault-skipped", fault=item.fault.name, fault_kind=item.fault.kind, reason=reason
        )


def _said(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    text = str(body or exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:200]
