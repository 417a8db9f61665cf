"""Why a stack did not get ready, in one line: the replica, its last event or probe, its log.

Read by the local stack's provisioning (and so by every stack built on its controller) when
it stops waiting: a replica that keeps ending before it was ever ready (what Kubernetes calls
CrashLoopBackOff), or one not ready by the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["CRASH_LOOP_BEFORE_READY", "crash_looping", "not_ready_reason"]

#: Provisioning stops waiting once a replica has ended this many times without being ready.
CRASH_LOOP_BEFORE_READY = 3


class _Replica(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def ever_ready(self) -> bool: ...
    @property
    def life(self) -> Any: ...
    @property
    def probes(self) -> Any: ...
    @property
    def last_probe(self) -> dict[str, str]: ...


def _last_line(log: Path) -> str:
    try:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def crash_looping(
    replicas: Sequence[_Replica], events: Sequence[dict[str, Any]], logs: Path
) -> str | None:
    """A replica that ended :data:`CRASH_LOOP_BEFORE_READY` times before it was ever ready,
    said with how it last ended and its log's last line; None if there is none."""
    for replica in replicas:
        if replica.ever_ready or replica.life.crashes < CRASH_LOOP_BEFORE_READY:
            continue
        ends = [
            e
            for e in events
            if e.get("replica") == replica.name
            and e["event"] in ("start-failed", "crashed", "oom-killed", "stopped")
        ]
        last = ends[-1] if ends else {}
        if len(ends) > 1 and ends[-2]["event"] == "start-failed":
            last = ends[-2]  # it never started: why, not the exit code that stands for it
        why = str(last.get("after") or last.get("reason") or "unknown")
        log = logs / f"{replica.name}.log"
        line = _last_line(log)
        said = f": {line}" if line else ""
        return (
            f"replica {replica.name} ended {replica.life.crashes} times before it was ever "
            f"ready (last: {why}); log: {log}{said}"
        )
    return None


def not_ready_reason(
    replicas: Sequence[_Replica], events: Sequence[dict[str, Any]], logs: Path, timeout_s: float
) -> str:
    """The first replica not ready, its last event and its last probe's answer."""
    for replica in replicas:
        if replica.life.ready:
            continue
        mine = [e["event"] for e in events if e.get("replica") == replica.name]
        started = replica.probes is not None and replica.probes.started
        kind = "readiness" if started else "startup"
        seen = replica.last_probe.get(kind)
        detail = f"; last {kind} probe: {seen}" if seen else ""
        log = logs / f"{replica.name}.log"
        return (
            f"replica {replica.name} not ready within {timeout_s:g} s "
            f"(last event: {mine[-1] if mine else 'none'}{detail}; log: {log})"
        )
    return f"replicas not ready within {timeout_s:g} s"
