"""The local backend's faults, applied from the stack's controller thread at their instants:

- ``kill``: SIGKILL of the replica's process group and cgroup; its restart policy then acts
  (the stack sees it end, says ``crashed`` and restarts it after its back-off);
- ``pause``: SIGSTOP to the replica's process group, SIGCONT at the fault's end: the kernel
  still accepts its connections, nothing answers (its probes fail, the balancer routes around
  it, a liveness probe may restart it). A replica restarted meanwhile has nothing to resume.

Each fault's instants come from the fleet's release (``arm``), on the clock of the load's
windows; what was applied is said as ``fault-applied`` / ``fault-ended`` events with the
replicas hit and how, and what could not be as ``fault-skipped``. Whatever is still applied at
teardown is undone first (``undo_all``).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...scenario.faults import Fault
from ._replica import ReplicaProcess

__all__ = ["FAULT_KINDS", "LocalFaults"]

#: What the local backend applies.
FAULT_KINDS = frozenset({"kill", "pause"})
_HOW = {"kill": "SIGKILL of the process group", "pause": "SIGSTOP of the process group"}


class _Replica(Protocol):
    @property
    def name(self) -> str: ...

    process: ReplicaProcess | None


@dataclass
class _Armed:
    fault: Fault
    at: float  # unix time
    end: float
    applied: bool = False
    ended: bool = False
    #: What was hit: (replica name, the process then running it).
    hit: list[tuple[str, ReplicaProcess]] = field(default_factory=list)


class LocalFaults:
    """The scheduled faults of one run against one local stack."""

    def __init__(self, event: Callable[..., None]) -> None:
        self._event = event
        self._armed: list[_Armed] = []
        self._lock = threading.Lock()

    def arm(self, faults: Sequence[Fault], started_at: float) -> None:
        """Schedule ``faults`` from ``started_at`` (unix time: when the load was released)."""
        with self._lock:
            for item in faults:
                at = started_at + item.at_ms / 1000
                self._armed.append(_Armed(item, at, at + item.lasting_ms / 1000))

    def tick(self, replicas: Sequence[_Replica]) -> None:
        """Apply what is due and end what is over (the controller thread, every tick)."""
        now = time.time()
        with self._lock:
            armed = list(self._armed)
        for item in armed:
            if not item.applied and now >= item.at:
                item.applied = True
                self._apply(item, replicas)
            if item.applied and not item.ended and item.fault.lasting_ms and now >= item.end:
                self._end(item, "its end")

    def undo_all(self) -> None:
        """End every fault still applied (teardown: before the replicas are stopped)."""
        with self._lock:
            armed = list(self._armed)
        for item in armed:
            if item.applied and not item.ended and item.fault.lasting_ms:
                self._end(item, "teardown")

    def applied(self) -> list[str]:
        """The faults applied and not yet ended (what a teardown must undo)."""
        with self._lock:
            return [
                a.fault.name
                for a in self._armed
                if a.applied and not a.ended and a.fault.lasting_ms and a.hit
            ]

    def _apply(self, item: _Armed, replicas: Sequence[_Replica]) -> None:
        fault = item.fault
        running = sorted(
            (r for r in replicas if r.process is not None and r.process.poll() is None),
            key=lambda r: r.name,
        )
        count = fault.replicas or len(running)
        if len(running) < count:
            item.ended = True
            self._event(
                "fault-skipped",
                fault=fault.name,
                fault_kind=fault.kind,
                reason=f"{len(running)} replica(s) running, the fault needs {count}",
            )
            return
        chosen = random.Random(fault.seed).sample(running, count)
        for replica in chosen:
            process = replica.process
            assert process is not None
            item.hit.append((replica.name, process))
        # The instant it took effect: taken as the signals go, on the load's clock.
        applied_at = time.time()
        for _, process in item.hit:
            if fault.kind == "kill":
                process.kill()
            else:
                process.signal(signal.SIGSTOP)
        self._event(
            "fault-applied",
            t=applied_at,
            fault=fault.name,
            fault_kind=fault.kind,
            replicas=[name for name, _ in item.hit],
            how=_HOW[fault.kind],
            label=fault.label,
        )
        if not fault.lasting_ms:
            item.ended = True

    def _end(self, item: _Armed, reason: str) -> None:
        item.ended = True
        resumed: list[str] = []
        for name, process in item.hit:
            if process.poll() is None:  # the same process: restarted ones have nothing to undo
                process.signal(signal.SIGCONT)
                resumed.append(name)
        fields: dict[str, Any] = {
            "fault": item.fault.name,
            "fault_kind": item.fault.kind,
            "replicas": [name for name, _ in item.hit],
            "resumed": resumed,
            "how": "SIGCONT",
            "reason": reason,
        }
        self._event("fault-ended", **fields)
