"""Per-replica cgroups: memory limit, CPU quota, processes (pids), IO (blkio / io), usage, OOM
kills, kill-all (v2 or v1).

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
from dataclasses import dataclass, field
from pathlib import Path

from ...fleet.oom import CGROUP_ROOT
from ...stack.spec import IoLimits

__all__ = ["Device", "ReplicaCgroup", "create", "device_of", "sweep"]

CFS_PERIOD_US = 100_000
#: The cgroup v1 hierarchies a replica's cgroup has a directory in (freezer where mounted;
#: pids and blkio when the spec limits them).
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "freezer", "pids", "blkio")
#: cgroup v1 blkio's throttle files, by the IoLimits field each holds.
V1_THROTTLES = {
    "read_bps": "blkio.throttle.read_bps_device",
    "write_bps": "blkio.throttle.write_bps_device",
    "read_iops": "blkio.throttle.read_iops_device",
    "write_iops": "blkio.throttle.write_iops_device",
}
#: cgroup v2 io.max's keys, by field.
V2_THROTTLES = {
    "read_bps": "rbps",
    "write_bps": "wbps",
    "read_iops": "riops",
    "write_iops": "wiops",
}


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
    #: How each isolation limit beyond CPU and memory is held ("pids", "io.write_bps", ...),
    #: or why it is not ("not enforced: ...").
    isolation: dict[str, str] = field(default_factory=dict)

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

    def run_delay(self) -> float | None:
        """Seconds its threads have waited on a run queue for a CPU (the kernel's schedstat,
        summed over the threads now in it); None where not told. It rises when other work
        holds the cores it is runnable on: contention, not its own quota."""
        directory = self.dirs.get("" if self.version == 2 else "cpu")
        if directory is None:
            return None
        threads = _read(directory / ("cgroup.threads" if self.version == 2 else "tasks")).split()
        waited, seen = 0, False
        for tid in threads:
            fields = _read(Path(f"/proc/{tid}/schedstat")).split()
            if len(fields) >= 2 and fields[1].isdigit():
                waited, seen = waited + int(fields[1]), True
        return waited / 1e9 if seen else None

    def pids_state(self) -> tuple[int, int | None, int] | None:
        """(processes now, their limit or None for none, forks refused at the limit so far);
        None without a pids cgroup."""
        directory = self.dirs.get("" if self.version == 2 else "pids")
        if directory is None or not (directory / "pids.current").exists():
            return None
        current = _read(directory / "pids.current").strip()
        limit = _read(directory / "pids.max").strip()
        refused = 0
        for line in _read(directory / "pids.events").splitlines():
            name, _, value = line.partition(" ")
            if name == "max" and value.strip().isdigit():
                refused = int(value)
        return (
            int(current or 0),
            int(limit) if limit.isdigit() else None,
            refused,
        )

    def io_state(self) -> dict[str, tuple[int, int | None]] | None:
        """Per direction (``read``, ``write``): bytes done on every disk so far and the
        lowest bytes-per-second throttle on any (None: none); None without an IO cgroup."""
        directory = self.dirs.get("" if self.version == 2 else "blkio")
        stat = "io.stat" if self.version == 2 else "blkio.throttle.io_service_bytes"
        if directory is None or not (directory / stat).exists():
            return None
        done = {"read": 0, "write": 0}
        rates: dict[str, list[str]] = {"read": [], "write": []}
        v2_keys = {"rbytes": "read", "wbytes": "write", "rbps": "read", "wbps": "write"}
        for line in _read(directory / stat).splitlines():
            words = line.split()
            if self.version == 2:
                for key, _, value in (w.partition("=") for w in words[1:]):
                    if key in ("rbytes", "wbytes") and value.isdigit():
                        done[v2_keys[key]] += int(value)
            elif len(words) == 3 and words[1] in ("Read", "Write") and words[2].isdigit():
                done[words[1].lower()] += int(words[2])
        if self.version == 2:
            for line in _read(directory / "io.max").splitlines():
                for key, _, value in (w.partition("=") for w in line.split()[1:]):
                    if key in ("rbps", "wbps"):
                        rates[v2_keys[key]].append(value)
        else:
            for way in ("read", "write"):
                found = _read(directory / V1_THROTTLES[f"{way}_bps"]).splitlines()
                rates[way] += [w.split()[1] for w in found if len(w.split()) == 2]
        limits = {
            way: min((int(r) for r in found if r.isdigit() and int(r) > 0), default=None)
            for way, found in rates.items()
        }
        return {way: (done[way], limits[way]) for way in ("read", "write")}

    def throttle_io(self, device: Device, bps: int) -> dict[Path, str]:
        """Reads and writes on ``device`` held to ``bps`` bytes a second at most (where a
        limit of the spec's is lower already, it stays); what to write back to undo it
        (:meth:`restore_io`). Raises OSError where there is no IO cgroup to write."""
        key = device.key
        if self.version == 2:
            path = self.dirs[""] / "io.max"
            line = next((w for w in _read(path).splitlines() if w.startswith(f"{key} ")), "")
            had = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
            before = {k: had.get(k, "max") for k in ("rbps", "wbps")}
            now = {k: min(int(v), bps) if v.isdigit() else bps for k, v in before.items()}
            path.write_text(f"{key} " + " ".join(f"{k}={v}" for k, v in now.items()))
            return {path: f"{key} " + " ".join(f"{k}={v}" for k, v in before.items())}
        blkio = self.dirs.get("blkio")
        if blkio is None:
            raise OSError("the replica's cgroup has no blkio controller")
        undo = {}
        for name in ("read_bps", "write_bps"):
            path = blkio / V1_THROTTLES[name]
            lines = [w.split() for w in _read(path).splitlines()]
            was = next((int(w[1]) for w in lines if len(w) == 2 and w[0] == key), 0)
            path.write_text(f"{key} {min(was, bps) if was else bps}")
            undo[path] = f"{key} {was}"  # 0: no throttle
        return undo

    def restore_io(self, undo: dict[Path, str]) -> None:
        """The throttles as they were before :meth:`throttle_io` (a cgroup gone: nothing)."""
        for path, line in undo.items():
            with contextlib.suppress(OSError):
                path.write_text(line)

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


def create(
    name: str,
    cpu_limit_m: int | None,
    memory_limit: int | None,
    *,
    pids: int | None = None,
    io: IoLimits | None = None,
    device: Device | None = None,
) -> ReplicaCgroup | None:
    """A new cgroup for a replica under this process's own, with its limits; None if the
    kernel or permissions do not allow it. ``pids`` and ``io`` (on ``device``, the writable
    paths' block device) are held where the kernel has the controller; what is not is said
    in the group's :attr:`~ReplicaCgroup.isolation`, never an error."""
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
            _limit_v2(group, pids, io, device)
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
        _limit_v1(group, own, leaf, pids=pids, io=io, device=device)
        return group
    except OSError:
        # Not permitted after all (e.g. cgroup v2 without the controllers delegated here):
        # leave nothing half-made behind.
        if made is not None:
            made.remove()
        return None


@dataclass(frozen=True)
class Device:
    """The block device a path is on, as the IO controllers name it (``major:minor``: the
    whole disk, a partition's IO being accounted to its disk), or why there is none."""

    major: int | None
    minor: int | None
    reason: str = ""

    @property
    def key(self) -> str:
        return f"{self.major}:{self.minor}"


def device_of(path: Path) -> Device:
    """The whole disk holding ``path``, or a Device saying why it has none (a tmpfs, an
    overlay: no block device behind it)."""
    try:
        number = os.stat(path).st_dev
    except OSError as exc:
        return Device(None, None, f"{path} cannot be read ({exc.strerror})")
    major, minor = os.major(number), os.minor(number)
    sys_dir = Path(f"/sys/dev/block/{major}:{minor}")
    if major == 0 or not sys_dir.exists():
        return Device(None, None, f"{path} is on no block device ({major}:{minor})")
    if (sys_dir / "partition").exists():  # a partition: its disk is the directory above
        parent = _read(sys_dir.resolve().parent / "dev").strip()
        if ":" in parent:
            major, minor = (int(p) for p in parent.split(":", 1))
    return Device(major, minor)


def _limit_v1(
    group: ReplicaCgroup,
    own: dict[str, str],
    leaf: str,
    *,
    pids: int | None,
    io: IoLimits | None,
    device: Device | None,
) -> None:
    """pids.max and the blkio throttles (and weight), each in its own hierarchy."""
    if pids is not None:
        if "pids" not in own:
            group.isolation["pids"] = "not enforced: no cgroup v1 pids controller here"
        else:
            directory = _v1_dir(group, own, "pids", leaf)
            (directory / "pids.max").write_text(str(pids))
            group.isolation["pids"] = f"cgroup v1 pids.max {pids}"
    if "blkio" in own:  # always: its IO is measured, and a slow_disk throttles it here
        _v1_dir(group, own, "blkio", leaf)
    if io is None:
        return
    if "blkio" not in own:
        for name in io.limited:
            group.isolation[name] = "not enforced: no cgroup v1 blkio controller here"
        return
    directory = _v1_dir(group, own, "blkio", leaf)
    if io.weight is not None:
        weight = directory / "blkio.weight"
        if weight.exists():
            weight.write_text(str(io.weight))
            group.isolation["io.weight"] = f"cgroup v1 blkio.weight {io.weight}"
        else:  # proportional weights need the BFQ (or CFQ) scheduler
            group.isolation["io.weight"] = (
                "not enforced: the kernel's blkio controller has no weight here (its IO "
                "scheduler is not BFQ)"
            )
    for name, value in io.throttles.items():
        if device is None or device.major is None:
            why = device.reason if device is not None else "no writable path"
            group.isolation[f"io.{name}"] = f"not enforced: {why}"
            continue
        (directory / V1_THROTTLES[name]).write_text(f"{device.key} {value}")
        group.isolation[f"io.{name}"] = f"cgroup v1 {V1_THROTTLES[name]} {device.key} {value}"


def _v1_dir(group: ReplicaCgroup, own: dict[str, str], controller: str, leaf: str) -> Path:
    base = (CGROUP_ROOT / controller / own[controller]).resolve()
    directory = base / leaf
    if directory not in group.dirs.values():
        directory.mkdir()
    group.dirs[controller] = directory
    return directory


def _limit_v2(
    group: ReplicaCgroup, pids: int | None, io: IoLimits | None, device: Device | None
) -> None:
    """pids.max and io.max / io.weight where the controllers are delegated here."""
    directory = group.dirs[""]
    if pids is not None:
        if (directory / "pids.max").exists():
            (directory / "pids.max").write_text(str(pids))
            group.isolation["pids"] = f"cgroup v2 pids.max {pids}"
        else:
            group.isolation["pids"] = "not enforced: the pids controller is not delegated here"
    if io is None:
        return
    if io.weight is not None:
        if (directory / "io.weight").exists():  # v2's range is 1..10000, default 100
            (directory / "io.weight").write_text(f"default {io.weight * 10}")
            group.isolation["io.weight"] = f"cgroup v2 io.weight {io.weight * 10}"
        else:
            group.isolation["io.weight"] = "not enforced: no io.weight here (not delegated)"
    throttles = io.throttles
    if not throttles:
        return
    if device is None or device.major is None or not (directory / "io.max").exists():
        why = (
            device.reason
            if device is not None and device.major is None
            else "the io controller is not delegated here"
        )
        for name in throttles:
            group.isolation[f"io.{name}"] = f"not enforced: {why}"
        return
    keys = " ".join(f"{V2_THROTTLES[n]}={v}" for n, v in throttles.items())
    (directory / "io.max").write_text(f"{device.key} {keys}")
    for name, value in throttles.items():
        group.isolation[f"io.{name}"] = (
            f"cgroup v2 io.max {device.key} {V2_THROTTLES[name]}={value}"
        )


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
