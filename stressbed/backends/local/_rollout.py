"""The local backend's restarts on purpose, driven from the stack's controller thread:

- ``restart``: every running replica (or those the seed chose) told to stop in one tick of
  the controller: SIGTERM (the target drains), SIGKILL once the stack's termination grace is
  over, and each started again as soon as it ended, with no crash back-off (a rollout
  replacing a pod, not a crash: :meth:`~stressbed.stack.lifecycle.Lifecycle.terminate` with
  ``deliberate``);
- ``rolling_restart`` (:class:`Rollout`): the same, ``max_unavailable`` replicas at a time, as
  a Deployment's rollout with maxSurge 0 replaces its pods: the next replica goes once its
  predecessor's replacement is ready (its readiness probe passed), and never while that would
  leave more than ``max_unavailable`` of the stack's replicas not ready (a replica already not
  ready goes first, and costs nothing more, as the ReplicaSet controller removes unhealthy
  pods first). It ends when the last replacement is ready; a replacement not ready within
  :func:`~stressbed.stack.probes.ready_within_s` (or no replica able to go for that long)
  stops it, saying why.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...scenario.faults import Fault
from ...stack.lifecycle import Lifecycle
from .runtime import ReplicaRun

__all__ = ["Rollout", "restart_at_once"]

#: Stop a replica on purpose (SIGTERM now, SIGKILL after the grace, started again at once once
#: it ended); False when it was not running to be stopped. A replica of those given to tick.
Restart = Callable[[Any], bool]


class _Replica(Protocol):
    @property
    def name(self) -> str: ...

    process: ReplicaRun | None
    life: Lifecycle


def restart_at_once(
    fault: Fault, replicas: Sequence[_Replica], restart: Restart
) -> tuple[list[tuple[str, ReplicaRun]], str]:
    """Every running replica (or ``fault.replicas`` of them, chosen by its seed) stopped on
    purpose now: those hit (name, the process stopped), or none and why not."""
    running = sorted((r for r in replicas if r.life.probed), key=lambda r: r.name)
    count = fault.replicas or len(running)
    if not running or len(running) < count:
        return [], f"{len(running)} replica(s) running, the fault needs {count or 1}"
    hit = []
    for replica in random.Random(fault.seed).sample(running, count):
        process = replica.process
        if process is not None and restart(replica):
            hit.append((replica.name, process))
    return sorted(hit), ""


@dataclass
class Rollout:
    """One rolling restart: the replicas it restarts, in the seed's order, and how far it got.
    :meth:`tick` moves it on and says what happened (the caller makes the events of it)."""

    fault: Fault
    deadline_s: float
    pending: list[str]  # still to restart, in order
    order: list[str] = field(default_factory=list)  # every one it set out to restart
    #: Stopped, replacement not ready yet: name -> (the process stopped, when: monotonic).
    in_flight: dict[str, tuple[ReplicaRun, float]] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)  # replacements ready, in order
    gone: list[str] = field(default_factory=list)  # deleted (scaled in) before their turn
    since: float = 0.0  # the last progress (monotonic)
    applied: bool = False

    @classmethod
    def of(cls, fault: Fault, replicas: Sequence[_Replica], deadline_s: float) -> Rollout:
        names = sorted(r.name for r in replicas if r.life.counted and r.process is not None)
        random.Random(fault.seed).shuffle(names)
        return cls(fault, deadline_s, list(names), list(names), since=time.monotonic())

    @property
    def max_unavailable(self) -> int:
        return int(self.fault.param("max_unavailable") or 1)

    def tick(self, replicas: Sequence[_Replica], restart: Restart) -> tuple[list[str], str]:
        """Follow the replacements, stop the next replicas when the budget allows: those
        stopped now, and why it is over ("" while it goes on)."""
        now = time.monotonic()
        by_name = {r.name: r for r in replicas if r.life.counted}
        self._follow(by_name, now)
        if not self.pending and not self.in_flight:
            return [], "done"
        late = sorted(n for n, (_, at) in self.in_flight.items() if now - at > self.deadline_s)
        if late:
            return [], f"{late[0]}'s replacement was not ready within {self.deadline_s:g} s"
        started = self._next(replicas, by_name, restart, now)
        if not self.in_flight and now - self.since > self.deadline_s:
            down = sum(not r.life.ready for r in by_name.values())
            return [], (
                f"no replica could be restarted for {self.deadline_s:g} s ({down} not ready, "
                f"at most {self.max_unavailable} may be)"
            )
        return started, ""

    def _follow(self, by_name: dict[str, _Replica], now: float) -> None:
        for name, (old, _) in list(self.in_flight.items()):
            replica = by_name.get(name)
            if replica is None:  # deleted meanwhile (scaled in): nothing to wait for
                del self.in_flight[name]
                self.gone.append(name)
                self.since = now
            elif replica.process is not old and replica.life.ready:
                del self.in_flight[name]
                self.restarted.append(name)
                self.since = now
        for name in [n for n in self.pending if n not in by_name]:
            self.pending.remove(name)
            self.gone.append(name)

    def _next(
        self,
        replicas: Sequence[_Replica],
        by_name: dict[str, _Replica],
        restart: Restart,
        now: float,
    ) -> list[str]:
        started: list[str] = []
        while self.pending and len(self.in_flight) < self.max_unavailable:
            # Not ready ones first: they are unavailable already (the ReplicaSet's order).
            ready = [by_name[n] for n in self.pending if by_name[n].life.probed]
            ready.sort(key=lambda r: (r.life.ready, self.pending.index(r.name)))
            if not ready:
                break  # running ones only: one in back-off is tried once it runs again
            replica = ready[0]
            down = sum(r.life.counted and not r.life.ready for r in replicas)
            if replica.life.ready and down + 1 > self.max_unavailable:
                break
            process = replica.process
            if process is None or not restart(replica):
                break
            self.pending.remove(replica.name)
            self.in_flight[replica.name] = (process, now)
            self.since = now
            started.append(replica.name)
        return started
