"""A rolling restart on a cluster: the agent Deployment's own rollout, started as ``kubectl
rollout restart`` starts one (a strategic merge patch of the pod template's
``kubectl.kubernetes.io/restartedAt`` annotation), with the Deployment's strategy set for it to
RollingUpdate with maxSurge 0 and maxUnavailable the fault's, so that the Deployment
controller deletes at most that many old pods at a time and the next only once their new
pods are available (their readiness probe passed).

It is followed as ``kubectl rollout status`` follows one (:func:`waiting_for`): done once the
controller has observed the patch, every replica is of the new template, no old pod is left
and every new one is available. The Deployment's own strategy is put back then. A rollout
whose status has not changed for the deadline (the replacement's probes' budget,
:func:`~stressbed.stack.probes.ready_within_s`, and SCHEDULING_S for a new pod to be scheduled
and its image pulled) is paused (``kubectl rollout pause``: no further pod is replaced) and
its strategy put back, saying what it waited for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._cluster import ClusterApi, RolloutState

__all__ = ["RESTARTED_AT", "SCHEDULING_S", "DeploymentRollout", "restart_patch", "waiting_for"]

#: The pod template annotation ``kubectl rollout restart`` sets (to the time, RFC 3339).
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
#: Beyond its probes' budget, how long a new pod may take to be scheduled and pull its image.
SCHEDULING_S = 60.0


def restart_patch(max_unavailable: int, at: float) -> dict[str, Any]:
    """The patch that restarts every pod of a Deployment, ``max_unavailable`` at a time. The
    strategy is patched whole (its patch strategy is retainKeys: keys left out are cleared)."""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "spec": {
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": max_unavailable, "maxSurge": 0},
            },
            "template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}},
        }
    }


def waiting_for(state: RolloutState, generation: int) -> str | None:
    """What the rollout of ``generation`` still waits for, as ``kubectl rollout status`` says
    it; None once it is done."""
    if state.observed_generation < generation:
        return "the Deployment controller to observe the restart"
    if state.updated < state.replicas:
        return f"{state.updated} of {state.replicas} new replicas updated"
    if state.current > state.updated:
        return f"{state.current - state.updated} old replicas pending termination"
    if state.available < state.updated:
        return f"{state.available} of {state.updated} updated replicas available"
    return None


class Refused(Exception):
    """The rollout could not be started (said in the fault's ``fault-skipped``)."""


@dataclass
class DeploymentRollout:
    """One rolling restart of Deployment ``name``, from its patch to its end."""

    api: ClusterApi
    namespace: str
    name: str
    max_unavailable: int
    deadline_s: float
    strategy: dict[str, Any] = field(default_factory=dict)  # the Deployment's own, put back
    generation: int = 0  # the patch's
    seen: tuple[int, ...] = ()  # the status last read
    since: float = 0.0  # when it last changed (monotonic)
    waiting: str = ""  # what it waited for at the last read

    def start(self, at: float) -> None:
        """Patch the Deployment (Refused when it is paused: kubectl refuses it too)."""
        before = self.api.rollout(self.namespace, self.name)
        if before.paused:
            raise Refused(f"Deployment {self.name} is paused (a rolling restart stopped earlier)")
        self.strategy = before.strategy
        patch = restart_patch(self.max_unavailable, at)
        self.generation = self.api.patch_deployment(self.namespace, self.name, patch)
        self.since = time.monotonic()

    def tick(self) -> str | None:
        """ "done" once rolled out (its strategy put back), why it was stopped when it made no
        progress in time (paused, its strategy put back), or None while it goes on."""
        state = self.api.rollout(self.namespace, self.name)
        waiting = waiting_for(state, self.generation)
        if waiting is None:
            self.restore(pause=False)
            return "done"
        now = time.monotonic()
        seen = (
            state.observed_generation,
            state.current,
            state.updated,
            state.ready,
            state.available,
        )
        if seen != self.seen:
            self.seen, self.since = seen, now
        self.waiting = waiting
        if now - self.since > self.deadline_s:
            self.restore(pause=True)
            return f"no progress for {self.deadline_s:g} s, waiting for {waiting}: paused"
        return None

    def restore(self, *, pause: bool) -> None:
        """Its strategy put back (no pod is replaced by that); ``pause``: no more either."""
        spec: dict[str, Any] = {"strategy": self.strategy}
        if pause:
            spec["paused"] = True
        self.api.patch_deployment(self.namespace, self.name, {"spec": spec})
