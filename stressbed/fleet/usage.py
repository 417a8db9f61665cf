"""What a runner's k6 uses of the CPU, and how much it may use: is the load generator the
limit? And how much memory it may take. Read from Linux's /proc and the runner's own cgroup
(v1 or v2); None where not told."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .oom import cgroup_of

__all__ = ["cpu_capacity", "cpu_seconds", "memory_bound", "quota_group_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """The user+system CPU seconds of process ``pid`` so far, or None (no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    except (IndexError, ValueError):
        return None


def cpu_capacity(pid: int | str = "self") -> float:
    """The cores ``pid`` may use: its CPU affinity, capped by its cgroup's CPU quota."""
    try:
        cores = float(len(os.sched_getaffinity(0 if pid == "self" else int(pid))))
    except OSError:  # gone already: what this machine has
        cores = float(os.cpu_count() or 1)
    quota = _cgroup_quota(pid)
    return min(cores, quota) if quota else cores


def _cgroup_quota(pid: int | str) -> float | None:
    found = cgroup_of(pid, "cpu")
    if found is None:
        return None
    version, group = found
    try:
        if version == 2:  # "max 100000" or "200000 100000"
            text = (group / "cpu.max").read_text().split()
            return None if text[0] == "max" else int(text[0]) / int(text[1])
        quota = int((group / "cpu.cfs_quota_us").read_text())
        period = int((group / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        return None


def quota_group_seconds(pid: int | str = "self") -> float | None:
    """The CPU seconds used by ``pid``'s cgroup so far, when that cgroup has a CPU quota (a
    runner pod's limit, a local runner's ``--runner-cpu``): the quota binds everything in it,
    the runner's own Python as well as its k6. None without a quota, or where not told."""
    if _cgroup_quota(pid) is None:
        return None
    found = cgroup_of(pid, "cpuacct")
    if found is None:
        return None
    version, group = found
    try:
        if version == 2:
            for line in (group / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
            return None
        return int((group / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def memory_bound(pid: int | str = "self") -> int | None:
    """The bytes ``pid`` may count on: its memory cgroup's limit, or what the machine has
    available now (/proc/meminfo), whichever is smaller; None where neither is told."""
    found: list[int] = []
    group = cgroup_of(pid, "memory")
    if group is not None:
        version, path = group
        name = "memory.max" if version == 2 else "memory.limit_in_bytes"
        with contextlib.suppress(OSError, ValueError):  # no such file, or "max": no limit
            limit = int((path / name).read_text().strip())
            if limit < 1 << 60:  # v1 says "no limit" with a huge number
                found.append(limit)
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    return min(found) if found else None
