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


def cgroup_of(pid: int | str, controller: str) -> tuple[int, Path] | None:
    """``pid``'s cgroup directory for ``controller`` and its version (2, or 1 with the
    controller's own hierarchy); None where /proc does not say."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            return 2, CGROUP_ROOT / path.lstrip("/")
        if controller in controllers.split(","):
            return 1, CGROUP_ROOT / controllers / path.lstrip("/")
    return None


def oom_kills(pid: int | str = "self") -> int | None:
    """The OOM-kill count of ``pid``'s memory cgroup; None where the kernel does not say."""
    found = cgroup_of(pid, "memory")
    if found is None:
        return None
    version, group = found
    if version == 2:
        local = group / "memory.events.local"  # Linux 5.2+
        return _counter(local if local.exists() else group / "memory.events")
    return _counter(group / "memory.oom_control")


def _counter(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None
