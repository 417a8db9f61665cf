"""What the local stack measures of its replicas: the usage series and the HPA's inputs.

Every sample period the controller hands in each running replica's cumulative CPU time,
working set, IO bytes and open connections through the balancer; the feed keeps a few seconds
of them per replica, reads how full the replicas' data folder is, appends one row to the
series summary.json shows, and turns them into the
utilisation (percent of the replica's request) the HPA algorithm reads, with Kubernetes' rule
that a replica not ready for a full metrics window has no usable sample yet.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...stack.lifecycle import Lifecycle
from ...stack.spec import StackSpec
from .runtime import Usage

__all__ = ["UsageFeed"]

_KEEP_EXTRA_S = 1.5  # samples kept beyond the metrics window, so a window always has two


@dataclass
class _Samples:
    cpu: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, cpu seconds)
    memory: int = 0  # working set in bytes, last seen
    periods: tuple[int, int] | None = None  # CFS (periods, throttled), last seen
    #: (time, a counter so far), last seen, by what it counts: "read" and "write" (bytes),
    #: "wait" (seconds waited for a CPU).
    counters: dict[str, tuple[float, float]] = field(default_factory=dict)


class UsageFeed:
    def __init__(self, spec: StackSpec, window_s: float, data: Path | None = None) -> None:
        self.spec = spec
        self.window_s = window_s
        self.data = data  # the replicas' data folder: how full its filesystem is
        self.series: list[dict[str, Any]] = []
        self._samples: dict[str, _Samples] = {}

    def restarted(self, name: str) -> None:
        """A new process: CPU time starts again from zero."""
        samples = self._samples.setdefault(name, _Samples())
        samples.cpu = []
        samples.periods = None
        samples.counters = {}

    def forget(self, name: str) -> None:
        """The replica is gone for good."""
        self._samples.pop(name, None)

    def sample(
        self,
        now: float,
        usage: dict[str, Usage],
        replicas: Sequence[Lifecycle],
        desired: int,
        *,
        balancer: Mapping[str, int] | None = None,
        connections: Mapping[str, int] | None = None,
    ) -> None:
        """Record ``usage`` (by replica name, running ones only) and append a series row;
        ``balancer``: the load balancer's open files and their limit, when read; each
        replica's open ``connections`` (by name: those the balancer counted)."""
        pods: dict[str, dict[str, float]] = {}
        for name, seen in usage.items():
            samples = self._samples.setdefault(name, _Samples())
            samples.cpu.append((now, seen.cpu_seconds))
            samples.cpu = [s for s in samples.cpu if now - s[0] <= self.window_s + _KEEP_EXTRA_S]
            samples.memory = seen.memory
            pods[name] = {
                "cpu_m": round(self.cpu_m(name, now, 1.0) or 0.0, 1),
                "memory_mib": round(seen.memory / 2**20, 2),
            }
            share = _throttled(samples.periods, seen.periods)
            if share is not None:
                pods[name]["throttled_share"] = round(share, 3)
            samples.periods = seen.periods
            for way, (done, limit) in (seen.io or {}).items():  # read, write
                rate = _rate(samples.counters, way, now, done)
                if rate is not None:
                    pods[name][f"io_{way}_mib_s"] = round(rate / 2**20, 3)
                if limit is not None:
                    pods[name][f"io_{way}_limit_mib_s"] = round(limit / 2**20, 3)
            if seen.cpu_wait_s is not None:
                waited = _rate(samples.counters, "wait", now, seen.cpu_wait_s)
                if waited is not None:
                    pods[name]["cpu_wait"] = round(waited, 4)  # seconds a second
            if seen.open_files is not None:
                pods[name]["open_files"] = seen.open_files
            if seen.nofile_limit is not None:
                pods[name]["nofile_limit"] = seen.nofile_limit
            if seen.pids is not None:
                current, most, refused = seen.pids
                pods[name]["pids"] = current
                pods[name]["pids_refused"] = refused  # forks refused at the limit, so far
                if most is not None:
                    pods[name]["pids_limit"] = most
        for name, count in (connections or {}).items():
            pods.setdefault(name, {})["connections"] = count
        row: dict[str, Any] = {
            "t": round(time.time(), 3),
            "replicas": sum(r.counted for r in replicas),
            "ready": sum(r.ready for r in replicas),
            "desired": desired,
            "pods": pods,
        }
        if balancer:
            row["balancer"] = dict(balancer)
        disk = _disk(self.data) if self.data is not None else None
        if disk is not None:
            row["data_free_mib"], row["data_size_mib"] = disk
        self.series.append(row)

    def cpu_m(self, name: str, now: float, window: float) -> float | None:
        """Millicores used over about ``window`` seconds; None without two samples."""
        samples = self._samples.get(name)
        if samples is None or len(samples.cpu) < 2:
            return None
        first = next((s for s in samples.cpu if now - s[0] <= window + 0.5), None)
        last = samples.cpu[-1]
        if first is None or last[0] - first[0] <= 0:
            return None
        return (last[1] - first[1]) / (last[0] - first[0]) * 1000.0

    def utilisation(
        self, now: float, live: Sequence[Lifecycle]
    ) -> tuple[list[float | None], list[float | None]]:
        """Per live replica, CPU and memory as percents of its requests (None: no metric)."""
        request_cpu, request_memory = self.spec.requests.cpu_m, self.spec.requests.memory
        cpu: list[float | None] = []
        memory: list[float | None] = []
        for replica in live:
            # As Kubernetes does: a replica not ready, or ready for less than a full metrics
            # window, has no usable sample yet.
            usable = replica.ready and now - replica.ready_since >= self.window_s
            cpu_m = self.cpu_m(replica.name, now, self.window_s) if usable else None
            cpu.append(cpu_m / request_cpu * 100 if cpu_m is not None and request_cpu else None)
            seen = self._samples.get(replica.name)
            used = seen.memory if seen is not None else 0
            memory.append(
                used / request_memory * 100 if usable and request_memory and used else None
            )
        return cpu, memory


def _throttled(before: tuple[int, int] | None, now: tuple[int, int] | None) -> float | None:
    """The share of CFS periods since the last sample in which the quota throttled."""
    if before is None or now is None or now[0] <= before[0]:
        return None
    return max(0.0, min(1.0, (now[1] - before[1]) / (now[0] - before[0])))


def _rate(
    counters: dict[str, tuple[float, float]], key: str, now: float, value: float
) -> float | None:
    """How fast counter ``key`` rose a second since its last reading (kept: ``value`` at
    ``now``); None without one, or where it went back (a new process's counter)."""
    before = counters.get(key)
    counters[key] = (now, value)
    if before is None or now <= before[0] or value < before[1]:
        return None
    return (value - before[1]) / (now - before[0])


def _disk(folder: Path) -> tuple[float, float] | None:
    """MiB free (to an unprivileged writer) and in all on ``folder``'s filesystem."""
    try:
        found = os.statvfs(folder)
    except OSError:
        return None
    return (
        round(found.f_bavail * found.f_frsize / 2**20, 2),
        round(found.f_blocks * found.f_frsize / 2**20, 2),
    )
