"""Per-replica cgroups: memory limit, CPU quota, usage, OOM kills, kill-all (v2 or v1).

Used by the local backend to give replicas the limits a Kubernetes pod would have. Where the
process may not create cgroups, :func:`create` returns None and the caller falls back (an
rlimit for memory, CPU limits advisory) and says so in the run's summary.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...fleet.oom import CGROUP_ROOT

__all__ = ["ReplicaCgroup", "create", "sweep"]

CFS_PERIOD_US = 100_000
#: The cgroup v1 hierarchies a replica's cgroup has a directory in (freezer where mounted).
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "freezer")


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per controller ("" for the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path.lstrip("/")
    return paths


@dataclass
class ReplicaCgroup:
    """One replica's cgroup(s); ``dirs`` maps a controller ("" in v2) to its directory."""

    version: int
    dirs: dict[str, Path]
    #: Frozen by :meth:`freeze` (a process entering it before exec would freeze mid-fork).
    frozen: bool = False

    @property
    def enforcement(self) -> str:
        return f"cgroup v{self.version}"

    def _unique(self) -> list[Path]:
        return list(dict.fromkeys(self.dirs.values()))

    def add(self, pid: int) -> None:
        for directory in self._unique():
            (directory / "cgroup.procs").write_text(str(pid))

    def enter(self) -> None:
        """Move the calling process in (for a child before exec: ``preexec_fn``)."""
        for directory in self._unique():
            with open(directory / "cgroup.procs", "w") as procs:
                procs.write("0")  # 0: the writing process itself

    def pids(self) -> list[int]:
        directory = next(iter(self.dirs.values()))
        try:
            return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def cpu_seconds(self) -> float:
        """CPU time used by everything in the cgroup so far."""
        if self.version == 2:
            for line in _read(self.dirs[""] / "cpu.stat").splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
            return 0.0
        return int(_read(self.dirs["cpuacct"] / "cpuacct.usage") or 0) / 1e9

    def throttling(self) -> tuple[int, int] | None:
        """(CFS periods, periods throttled) so far, from cpu.stat; None where not told."""
        directory = self.dirs.get("" if self.version == 2 else "cpu")
        if directory is None:
            return None
        found: dict[str, int] = {}
        for line in _read(directory / "cpu.stat").splitlines():
            name, _, value = line.partition(" ")
            if name in ("nr_periods", "nr_throttled") and value.strip().isdigit():
                found[name] = int(value)
        if len(found) < 2:
            return None
        return found["nr_periods"], found["nr_throttled"]

    def memory_bytes(self) -> int:
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        directory = self.dirs["" if self.version == 2 else "memory"]
        return int(_read(directory / name) or 0)

    def working_set(self) -> int:
        """Memory as the kubelet counts it against the limit: usage less inactive page cache."""
        if self.version == 2:
            stat, key = self.dirs[""] / "memory.stat", "inactive_file"
        else:
            stat, key = self.dirs["memory"] / "memory.stat", "total_inactive_file"
        inactive = 0
        for line in _read(stat).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                inactive = int(value)
        return max(0, self.memory_bytes() - inactive)

    def oom_kills(self) -> int:
        if self.version == 2:
            path, key = self.dirs[""] / "memory.events", "oom_kill"
        else:
            path, key = self.dirs["memory"] / "memory.oom_control", "oom_kill"
        for line in _read(path).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
        return 0

    @property
    def can_freeze(self) -> bool:
        """Whether the kernel's freezer holds this cgroup (v1's freezer controller, v2's
        cgroup.freeze)."""
        if self.version == 2:
            return (self.dirs[""] / "cgroup.freeze").exists()
        return "freezer" in self.dirs

    def freeze(self, frozen: bool) -> bool:
        """Freeze (or thaw) everything inside at once: nothing in it runs, whatever signals
        it gets, until thawed. True once the kernel says it is done (waited for, bounded)."""
        if self.version == 2:
            control, value = self.dirs[""] / "cgroup.freeze", "1" if frozen else "0"
            state, want = self.dirs[""] / "cgroup.events", f"frozen {value}"
        else:
            control = state = self.dirs["freezer"] / "freezer.state"
            value = want = "FROZEN" if frozen else "THAWED"
        try:
            control.write_text(value)
        except OSError:
            return False
        self.frozen = frozen
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if want in _read(state).splitlines():
                return True
            time.sleep(0.01)
        return False

    def kill_all(self) -> None:
        """SIGKILL everything inside, then wait until the cgroup is empty (bounded)."""
        if self.can_freeze:
            self.freeze(False)  # a frozen task cannot act on its SIGKILL until thawed
        if self.version == 2 and (self.dirs[""] / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (self.dirs[""] / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self) -> None:
        """Kill what is inside and remove the cgroup; the kernel may report it busy for a
        moment after the last process died, so removal is retried briefly."""
        self.kill_all()
        deadline = time.monotonic() + 3
        remaining = self._unique()
        while remaining and time.monotonic() < deadline:
            for directory in list(remaining):
                try:
                    directory.rmdir()
                    remaining.remove(directory)
                except FileNotFoundError:
                    remaining.remove(directory)
                except OSError:
                    continue  # still busy: try again after the pause below
            if remaining:
                time.sleep(0.05)


def create(name: str, cpu_limit_m: int | None, memory_limit: int | None) -> ReplicaCgroup | None:
    """A new cgroup for a replica under this process's own, with its limits; None if the
    kernel or permissions do not allow it."""
    own = _own_paths()
    made: ReplicaCgroup | None = None
    # The creator's pid in the name lets a later run remove what a killed run left behind.
    leaf = f"stressbed-{os.getpid()}-{name}-{uuid.uuid4().hex[:8]}"
    sweep()
    try:
        if "" in own and (CGROUP_ROOT / "cgroup.controllers").exists():
            directory = CGROUP_ROOT / own[""] / leaf
            directory.mkdir()
            group = ReplicaCgroup(2, {"": directory})
            made = group
            if memory_limit is not None:
                (directory / "memory.max").write_text(str(memory_limit))
                with contextlib.suppress(OSError):
                    (directory / "memory.swap.max").write_text("0")
            if cpu_limit_m is not None:
                quota = cpu_limit_m * CFS_PERIOD_US // 1000
                (directory / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
            return group
        dirs: dict[str, Path] = {}
        controllers = ("memory", "cpu", "cpuacct")
        if any(c not in own for c in controllers):
            return None
        made = ReplicaCgroup(1, dirs)  # removed again if a later step fails
        for controller in controllers:
            # Co-mounted controllers ("cpu,cpuacct") resolve to one hierarchy: one directory.
            base = (CGROUP_ROOT / controller / own[controller]).resolve()
            directory = base / leaf
            if directory not in dirs.values():
                directory.mkdir()
            dirs[controller] = directory
        if "freezer" in own:  # optional: a pause falls back to SIGSTOP without it
            base = (CGROUP_ROOT / "freezer" / own["freezer"]).resolve()
            with contextlib.suppress(OSError):
                (base / leaf).mkdir()
                dirs["freezer"] = base / leaf
        group = ReplicaCgroup(1, dirs)
        if memory_limit is not None:
            (dirs["memory"] / "memory.limit_in_bytes").write_text(str(memory_limit))
            with contextlib.suppress(OSError):
                (dirs["memory"] / "memory.memsw.limit_in_bytes").write_text(str(memory_limit))
        if cpu_limit_m is not None:
            (dirs["cpu"] / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(cpu_limit_m * CFS_PERIOD_US // 1000))
        return group
    except OSError:
        # Not permitted after all (e.g. cgroup v2 without the controllers delegated here):
        # leave nothing half-made behind.
        if made is not None:
            made.remove()
        return None


def sweep() -> int:
    """Remove the replica cgroups of stressbeds that are gone (killed with ``-9``), with what
    still runs in them; how many were removed. What is inside is thawed first, then killed:
    a replica frozen by a ``pause`` fault ignores its parent-death signal (a frozen task acts
    on no signal) and would otherwise stay, frozen, for ever. Only stressbed's own cgroups
    (``stressbed-<pid>-...``) beside this process's, and only of a pid no longer running."""
    own = _own_paths()
    if "" in own and (CGROUP_ROOT / "cgroup.controllers").exists():
        version, bases = 2, {"": CGROUP_ROOT / own[""]}
    else:
        version = 1
        bases = {c: (CGROUP_ROOT / c / own[c]).resolve() for c in V1_CONTROLLERS if c in own}
    left: dict[str, dict[str, Path]] = {}  # leaf name -> controller -> its directory
    for controller, base in bases.items():
        with contextlib.suppress(OSError):
            for child in base.glob("stressbed-*-*"):
                creator = child.name.split("-")[1]
                if creator.isdigit() and not Path(f"/proc/{creator}").exists():
                    left.setdefault(child.name, {})[controller] = child
    for dirs in left.values():
        ReplicaCgroup(version, dirs).remove()  # thaws, kills, waits, removes (bounded)
    return sum(not any(d.exists() for d in dirs.values()) for dirs in left.values())


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
