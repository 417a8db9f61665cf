"""Telling an out-of-memory kill from any other SIGKILL: the cgroup's oom_kill counter.

A process killed by the kernel's OOM killer dies of SIGKILL like one killed by hand; the
memory cgroup it ran in counts OOM kills. Only the cgroup's own kills count: v2's
``memory.events.local`` (``memory.events`` also counts every descendant, such as the local
backend's replica cgroups), v1's ``memory.oom_control`` (local by the kernel's design). If the
counter rose while k6 ran and nobody else killed it, k6 was OOM-killed.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def oom_kills(pid: int | str = "self") -> int | None:
    """The OOM-kill count of ``pid``'s memory cgroup; None where the kernel does not say."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            group = CGROUP_ROOT / path.lstrip("/")
            local = group / "memory.events.local"  # Linux 5.2+
            return _counter(local if local.exists() else group / "memory.events")
        if "memory" in controllers.split(","):  # cgroup v1
            return _counter(CGROUP_ROOT / "memory" / path.lstrip("/") / "memory.oom_control")
    return None


def _counter(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None
