"""What a test module leaves behind: stressbed's processes and cgroups, and at the session's end
its containers.

Each test module is checked when it ends (after its own module fixtures are gone): a process
of stressbed's (an agent, a runner, a balancer, a hog, k6, a test target) that this session
started and that is still there after a grace period, or a replica cgroup made during the
module, is named as that module's leftover, then ended and removed, so that one module's
leftover never meets a later module's timings. A leftover fails the module's last test (an
error at teardown), and the session's end lists every one and checks that no process, cgroup
or container of stressbed's remains.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Leftover",
    "Snapshot",
    "containers",
    "describe",
    "end",
    "processes",
    "replica_cgroups",
    "snapshot",
]

CGROUPS = Path("/sys/fs/cgroup")
#: A process is stressbed's when it runs one of these modules or programs.
MODULES = (
    "stressbed",
    "stressbed_agent",
    "stressbed.runner",
    "stressbed.coordinator",
    "stressbed.balancer",
    "stressbed.backends.local._hog",
)
PROGRAMS = ("k6", "stressbed", "stressbed-agent")
#: Test targets that tests start as processes of their own.
SCRIPTS = ("capacity_target", "fake_target")
#: How long a process may take to end after its test (teardown finishing in the background).
GRACE_S = 10.0


def worker() -> str | None:
    """The pytest-xdist worker this process is (``gw0``, ``gw1``), None outside a worker."""
    return os.environ.get("PYTEST_XDIST_WORKER")


@dataclass(frozen=True)
class Leftover:
    """A process (``pid``) or a cgroup directory (``path``) left behind."""

    what: str
    pid: int | None = None
    path: Path | None = None

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.what}" if self.pid is not None else f"cgroup {self.path}"


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time in clock ticks) of ``pid``; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _stressbeds(argv: list[str]) -> bool:
    """Whether ``argv`` runs one of stressbed's programs or modules (``python -m MODULE``)."""
    if not argv:
        return False
    if os.path.basename(argv[0]) in PROGRAMS:
        return True
    if argv[1:2] == ["-m"] and argv[2:3] and argv[2] in MODULES:
        return True
    return argv[1:2] != [] and os.path.basename(argv[1]).removesuffix(".py") in SCRIPTS


Table = dict[int, tuple[int, str, int]]


def _table() -> Table:
    table: Table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = stat
    return table


def _ours(pid: int, table: Table) -> bool:
    """A descendant of this process, or an orphan of stressbed's own (its run ended or was
    killed, so it was reparented): what a test of this session may have started. Another test
    session's (a second pytest on the machine) are not. In a worker, an orphan is its only
    when it says so (its environment names this worker): the other worker's are the other
    worker's, and what neither says is the controller's to find at the end."""
    me = os.getpid()
    while pid != me:
        if pid not in table:
            return False
        parent = table[pid][0]
        if parent not in table or parent in (0, 1):
            return _stressbeds(_argv(pid)) and (worker() is None or _worker(pid) == worker())
        pid = parent
    return True


def _worker(pid: int) -> str | None:
    """The xdist worker named in ``pid``'s environment (as it was started), if any."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for entry in raw.split(b"\0"):
        if entry.startswith(b"PYTEST_XDIST_WORKER="):
            return entry.split(b"=", 1)[1].decode(errors="replace")
    return None


def processes(since_ticks: int) -> dict[int, Leftover]:
    """stressbed's live processes that this session made, started at or after
    ``since_ticks``."""
    table = _table()
    found = {}
    for pid, (_, state, started) in table.items():
        if pid == os.getpid() or state == "Z" or started < since_ticks:
            continue
        argv = _argv(pid)
        if _stressbeds(argv) and _ours(pid, table):
            found[pid] = Leftover(" ".join(argv)[:200], pid=pid)
    return found


def _cgroup_parents() -> list[Path]:
    """Where this process's replica cgroups are made: its own cgroup in each hierarchy."""
    parents = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            base = CGROUPS / controllers if controllers else CGROUPS
            if controllers.startswith("name="):
                continue
            parents.append((base / path.lstrip("/")).resolve())
    return list(dict.fromkeys(p for p in parents if p.is_dir()))


def replica_cgroups() -> set[Path]:
    """The local backend's replica cgroups under this process's own that this session made:
    their creator (the pid in their name) is this process or one of its descendants, or is
    gone (a run that ended or was killed; not in a worker: the controller finds those)."""
    table = _table()
    found: set[Path] = set()
    for parent in _cgroup_parents():
        with contextlib.suppress(OSError):
            for group in parent.glob("stressbed-*-*"):
                creator = group.name.split("-")[1]
                if not creator.isdigit():
                    continue
                if int(creator) in table and _ours(int(creator), table):
                    found.add(group)
                elif int(creator) not in table and worker() is None:
                    found.add(group)  # its maker is gone: in a worker, whose it was is not known
    return found


def _ticks_now() -> int:
    """Now in /proc's start-time clock (ticks since boot)."""
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return int(uptime * os.sysconf("SC_CLK_TCK"))


@dataclass
class Snapshot:
    """When a span began (/proc's clock) and the replica cgroups there were then."""

    ticks: int
    cgroups: set[Path]


def snapshot() -> Snapshot:
    return Snapshot(_ticks_now(), replica_cgroups())


def _thaw(pid: int) -> None:
    """A frozen process acts on no signal until thawed (cgroup v1 freezer, v2 cgroup.freeze)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "freezer":
                (CGROUPS / "freezer" / path.lstrip("/") / "freezer.state").write_text("THAWED")
            elif controllers == "":
                freeze = CGROUPS / path.lstrip("/") / "cgroup.freeze"
                if freeze.exists():
                    freeze.write_text("0")


def _remove(group: Path) -> None:
    for _ in range(50):
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                _thaw(int(pid))
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)
        # The other hierarchies of this replica share its directory name.
        siblings = [p / group.name for p in _cgroup_parents()]
        for directory in [group, *siblings]:
            with contextlib.suppress(OSError):
                directory.rmdir()
        if not any(d.exists() for d in [group, *siblings]):
            return
        time.sleep(0.1)


def end(before: Snapshot) -> list[Leftover]:
    """What was made since ``before`` and is still there after the grace period: each one
    ended (thawed first, then SIGKILL) and removed, and returned."""
    deadline = time.monotonic() + GRACE_S
    while True:
        procs = processes(before.ticks)
        groups = replica_cgroups() - before.cgroups
        if (not procs and not groups) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for pid in procs:
        _thaw(pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for group in groups:
        _remove(group)
    return [*procs.values(), *(Leftover("replica cgroup", path=g) for g in sorted(groups))]


def containers() -> list[str]:
    """Containers and networks carrying a stressbed run's label (where an engine answers)."""
    docker = shutil.which("docker")
    if docker is None:
        return []
    found: list[str] = []
    for kind in ("ps", "network"):
        argv = [docker, kind, *(["-a"] if kind == "ps" else ["ls"])]
        argv += ["--filter", "label=stressbed.run", "--format", "{{.Names}}"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
            if done.returncode == 0:
                found += [f"{kind}: {n}" for n in done.stdout.split()]
    return found


def describe(found: Iterable[Leftover]) -> str:
    return "; ".join(str(f) for f in found)
