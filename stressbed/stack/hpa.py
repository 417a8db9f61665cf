"""The Kubernetes HPA algorithm (autoscaling/v2), as a pure controller the local backend runs.

Each sync (``HpaController.decide``) takes the replicas' measured utilisation (percent of
their requests; None for a replica that is not ready or has no metric yet) and returns the
replica count to move to and why:

1. per metric, ratio = mean utilisation of ready replicas / target; within the tolerance
   (10%) nothing changes; otherwise, as Kubernetes does, replicas without a usable metric count
   as 0% when scaling up and as 100% of target when scaling down, and if that reverses the
   direction or lands within tolerance, nothing changes; desired = ceil(ratio x count);
2. the largest recommendation over all metrics wins;
3. stabilisation: scaling down takes the highest recommendation of the down window, scaling
   up the lowest of the up window;
4. policies: per direction, the most permissive of the Pods/Percent limits over their periods;
5. min/max replicas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .spec import Autoscaler, ScalePolicy

__all__ = ["Decision", "HpaController"]


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str


@dataclass
class HpaController:
    spec: Autoscaler
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    changes: list[tuple[float, int, int]] = field(default_factory=list)  # (at, from, to)

    def decide(
        self,
        now: float,
        current: int,
        cpu: Sequence[float | None] = (),
        memory: Sequence[float | None] = (),
    ) -> Decision:
        proposals: list[tuple[int, str]] = []
        for name, target, values in (
            ("cpu", self.spec.cpu_utilization, cpu),
            ("memory", self.spec.memory_utilization, memory),
        ):
            if target is not None and values:
                proposals.append(self._metric(name, target, values, current))
        if not proposals:
            return Decision(current, "no metrics yet")
        wanted, reason = max(proposals)
        self.recommendations.append((now, wanted))
        stable = self._stabilised(now, current, wanted)
        if stable != wanted:
            reason += f"; stabilised to {stable}"
        limited = self._limited(now, current, stable)
        if limited != stable:
            reason += f"; limited by policy to {limited}"
        bounded = min(max(limited, self.spec.min_replicas), self.spec.max_replicas)
        if bounded != limited:
            reason += f"; bounded to {bounded}"
        if bounded != current:
            self.changes.append((now, current, bounded))
        return Decision(bounded, reason)

    def _metric(
        self, name: str, target: int, values: Sequence[float | None], current: int
    ) -> tuple[int, str]:
        ready = [v for v in values if v is not None]
        missing = len(values) - len(ready)
        if not ready:
            return current, f"{name}: no ready replica reports"
        usage = sum(ready) / len(ready)
        ratio = usage / target
        tolerance = self.spec.tolerance
        if abs(ratio - 1) <= tolerance:
            return current, f"{name} {usage:.0f}% of request, target {target}%: within tolerance"
        if missing:
            # Kubernetes' conservative fill-in for replicas without a usable metric.
            fill = 0.0 if ratio > 1 else float(target)
            new_ratio = (sum(ready) + fill * missing) / len(values) / target
            if abs(new_ratio - 1) <= tolerance or (new_ratio > 1) != (ratio > 1):
                return current, f"{name}: change reversed once unready replicas count"
            ratio = new_ratio
            count = len(values)
        else:
            count = len(ready)
        desired = math.ceil(ratio * count)
        return desired, f"{name} {usage:.0f}% of request, target {target}%"

    def _stabilised(self, now: float, current: int, wanted: int) -> int:
        longest = max(self.spec.scale_up_stabilization_s, self.spec.scale_down_stabilization_s)
        self.recommendations = [(t, r) for t, r in self.recommendations if now - t <= longest]
        if wanted < current:
            window = [
                r
                for t, r in self.recommendations
                if now - t <= self.spec.scale_down_stabilization_s
            ]
            return min(current, max(window))
        if wanted > current:
            window = [
                r for t, r in self.recommendations if now - t <= self.spec.scale_up_stabilization_s
            ]
            return max(current, min(window))
        return wanted

    def _limited(self, now: float, current: int, wanted: int) -> int:
        if wanted > current:
            return min(wanted, self._bound(now, current, self.spec.scale_up_policies, up=True))
        if wanted < current:
            return max(wanted, self._bound(now, current, self.spec.scale_down_policies, up=False))
        return wanted

    def _bound(self, now: float, current: int, policies: Sequence[ScalePolicy], *, up: bool) -> int:
        """The furthest count the most permissive policy allows from where the period began."""
        best: int | None = None
        for policy in policies:
            moved = sum(
                (to - frm) if up else (frm - to)
                for at, frm, to in self.changes
                if now - at < policy.period_s and ((to > frm) == up)
            )
            start = current - moved if up else current + moved
            if policy.kind == "Pods":
                allowed = start + policy.value if up else start - policy.value
            else:
                step = (
                    math.ceil(start * policy.value / 100)
                    if up
                    else math.floor(start * policy.value / 100)
                )
                allowed = start + step if up else start - step
            best = allowed if best is None else (max(best, allowed) if up else min(best, allowed))
        return current if best is None else best
