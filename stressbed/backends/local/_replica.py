"""The process runtime: each run of a replica a process on this machine, with the limits a
pod's container has (:class:`ProcessRuntime` makes them, :class:`ReplicaProcess` is one).

The process runs in its own process group, with stdin detached, its output in a log file, a
parent-death signal so it never outlives stressbed, and its open-file limit raised to the hard
limit (each connection it holds is a descriptor). Its memory limit and CPU quota are
enforced by a cgroup of its own when this process may create one (v2 or v1); otherwise the
memory limit becomes an rlimit on its data segment and the CPU limit is advisory, and
:attr:`ReplicaProcess.enforcement` says so. How the process ended is told apart: an exit code,
a signal, or an OOM kill (the cgroup's ``oom_kill`` counter rose).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError
from ...fleet.process import die_with_parent, free_port, nofile_of, raise_nofile
from ...stack.spec import IoLimits, StackSpec
from . import _cgroups
from ._datafs import mount_own
from ._files import open_files
from ._options import LocalOptions
from .runtime import Exit, Launch, ReplicaRun, ReplicaRuntime, Usage

__all__ = ["INHERITED_ENV", "ProcessRuntime", "ReplicaProcess", "check_executable", "run_command"]

#: What a replica inherits of stressbed's environment: nothing else of the shell (no cloud
#: credentials, no admin token) reaches the target; the StackSpec's env and secrets come on
#: top, and the run's own token for the target's fault hook when its spec declares one.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = resource.getpagesize()


@dataclass(frozen=True)
class Isolation:
    """A replica's limits beyond CPU and memory: processes, IO on ``device`` (its writable
    paths' disk), open files."""

    pids: int | None = None
    io: IoLimits | None = None
    device: _cgroups.Device | None = None
    nofile: int | None = None
    #: How the ephemeral-storage limit is held (the data folder's tmpfs), if it is set.
    storage: str | None = None

    def limited(self) -> list[str]:
        """The cgroup-held limits set, as summary.json names them."""
        names = ["pids"] if self.pids is not None else []
        if self.io is not None:
            names += self.io.limited
        return names


class ProcessRuntime(ReplicaRuntime):
    """Replicas as processes on ``host``, each on a free port of its own, with a cgroup each
    (``cgroups``: where the kernel lets this process make one) or rlimits."""

    def __init__(
        self, host: str = "127.0.0.1", *, cgroups: bool = True, data_size: int | None = None
    ) -> None:
        self.host = host
        self.cgroups = cgroups
        self.data_size = data_size  # the data folder a tmpfs of this size (a disk_fill fault)

    @classmethod
    def of(cls, options: LocalOptions) -> ProcessRuntime:
        """The runtime the local backend's ``options`` ask for."""
        return cls(options.host, cgroups=options.cgroups, data_size=options.data_size)

    def prepare(self, spec: StackSpec, work_dir: Path, say: Callable[..., None]) -> None:
        check_executable(spec.target.command)  # bad input (exit 2) before anything starts
        if self.data_size is not None:
            storage = spec.limits.ephemeral_storage is not None
            field = "stack.limits.ephemeral-storage" if storage else "faults.disk_fill"
            self.data_fs = fs = mount_own(work_dir / "data", self.data_size, field)
            say("data-mounted", path=str(fs.folder), fs="tmpfs", size=fs.size)

    release_step = ("unmount the data folder's tmpfs", 30.0)

    def release(self) -> None:
        """The data folder's tmpfs unmounted, its files copied back onto the folder first."""
        if self.data_fs is not None:
            self.data_fs.unmount()

    def _storage(self, spec: StackSpec) -> str | None:
        """How the spec's ephemeral-storage limit is held: the data folder's tmpfs, which
        every replica shares (one folder, as one volume would be)."""
        if spec.limits.ephemeral_storage is None:
            return None
        if self.data_fs is None:
            return "not enforced: the data folder is no tmpfs of the stack's own"
        return (
            f"tmpfs size={self.data_fs.size} on the data folder, shared by the replicas "
            f"(the limit times the most replicas): one replica may use another's share"
        )

    def launch(self, launch: Launch) -> ReplicaProcess:
        spec = launch.spec
        port = free_port(self.host)
        data = launch.work_dir / "data"  # shared by every replica, as a volume would be
        data.mkdir(parents=True, exist_ok=True)
        inherited = {n: os.environ[n] for n in INHERITED_ENV if n in os.environ}
        process = ReplicaProcess(
            launch.name,
            launch.fill((*spec.target.command, *spec.target.args), str(data), port, self.host),
            launch.env(str(data), port, self.host, inherited),
            launch.log,
            cpu_limit_m=spec.limits.cpu_m,
            memory_limit=spec.limits.memory,
            cgroups=self.cgroups,
            isolation=Isolation(
                pids=spec.pids,
                io=spec.io,
                device=_cgroups.device_of(data) if spec.io is not None else None,
                nofile=spec.nofile,
                storage=self._storage(spec),
            ),
        )
        process.port = port
        return process


class ReplicaProcess(ReplicaRun):
    """Start, watch, measure and stop one process of a replica."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        *,
        cpu_limit_m: int | None,
        memory_limit: int | None,
        cgroups: bool = True,
        isolation: Isolation | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.log = log
        self.memory_limit = memory_limit
        wanted = isolation or Isolation()
        self.nofile_wanted = wanted.nofile
        self.group = (
            _cgroups.create(
                name,
                cpu_limit_m,
                memory_limit,
                pids=wanted.pids,
                io=wanted.io,
                device=wanted.device,
            )
            if cgroups
            else None
        )
        self._isolation = dict(self.group.isolation) if self.group is not None else {}
        if self.group is None:  # no cgroup: no pids or IO controller to hold them
            for name_ in wanted.limited():
                self._isolation[name_] = "not enforced: no cgroup for the replica here"
        if wanted.nofile is not None:
            self._isolation["nofile"] = f"RLIMIT_NOFILE {wanted.nofile}"
        if wanted.storage is not None:
            self._isolation["ephemeral-storage"] = wanted.storage
        self._oom_before = self.group.oom_kills() if self.group else 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit: Exit | None = None
        self.started_at = 0.0

    @property
    def enforcement(self) -> str:
        if self.group is not None:
            return self.group.enforcement
        return "rlimit (memory as RLIMIT_DATA; CPU limits advisory)"

    @property
    def enforced(self) -> bool:
        """Whether its limits are enforced (a cgroup), not only an rlimit and advice."""
        return self.group is not None

    @property
    def isolation(self) -> dict[str, str]:
        return self._isolation

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> dict[str, object]:
        """Spawn the process (call it from a thread that lives as long as the replica); what
        names it, for its ``created`` event."""
        group, memory, nofile = self.group, self.memory_limit, self.nofile_wanted
        orphan_guard = die_with_parent()

        def before_exec() -> None:
            orphan_guard()
            if nofile is not None:  # the spec's (checked against the hard limit beforehand)
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            else:
                raise_nofile()  # a connection is a descriptor: the hard limit, not 1024
            if group is not None:
                group.enter()
            elif memory is not None:
                resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=before_exec,  # noqa: PLW1509 - prctl, a cgroup write, rlimits
            )
        self.started_at = time.monotonic()
        self.nofile = nofile_of(self.proc.pid)  # what it has, read once it has exec'd
        return {"pid": self.proc.pid}

    @property
    def can_freeze(self) -> bool:
        """Whether :meth:`freeze` can stop it whole (a cgroup freezer), not only SIGSTOP."""
        return self.group is not None and self.group.can_freeze

    def freeze(self, frozen: bool) -> bool:
        """Freeze (or thaw) everything of the replica at once; False where it did not take."""
        return self.group is not None and self.group.freeze(frozen)

    def exec_probe(self, command: Sequence[str], timeout_s: float) -> tuple[bool, str]:
        """An exec probe: ``command`` run beside the replica, with its environment."""
        return run_command(command, self.env, timeout_s)

    def poll(self) -> Exit | None:
        """How the process ended, or None while it runs."""
        if self.exit is not None or self.proc is None:
            return self.exit
        code = self.proc.poll()
        if code is None:
            return None
        oom = self.group is not None and self.group.oom_kills() > self._oom_before
        if code < 0:
            self.exit = Exit(None, -code, oom and -code == signal.SIGKILL)
        else:
            self.exit = Exit(code, None, False)
        return self.exit

    def usage(self) -> Usage | None:
        """CPU time and working set now; None once the process is gone."""
        if self.proc is None or self.poll() is not None:
            return None
        files, limit = open_files(self.proc.pid)
        if self.group is not None:
            return Usage(
                self.group.cpu_seconds(),
                self.group.working_set(),
                self.group.throttling(),
                open_files=files,
                nofile_limit=limit,
                pids=self.group.pids_state(),
                io=self.group.io_state(),
                cpu_wait_s=self.group.run_delay(),
            )
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            statm = Path(f"/proc/{self.proc.pid}/statm").read_text().split()
        except (OSError, IndexError):
            return None
        # utime, stime, cutime, cstime: fields 14-17 of stat(5), here 11-14 after the name.
        ticks = sum(int(x) for x in fields[11:15])
        return Usage(
            ticks / _CLOCK_TICKS, int(statm[1]) * _PAGE, open_files=files, nofile_limit=limit
        )

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the replica's whole process group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL everything of the replica: its process group (children included, even
        after the leader died) and its cgroup."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.group is not None:
            self.group.kill_all()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self.poll()

    def close(self) -> None:
        """Kill whatever is left and remove the cgroup."""
        self.kill()
        if self.group is not None:
            self.group.remove()


def run_command(
    command: Sequence[str], env: Mapping[str, str], timeout_s: float
) -> tuple[bool, str]:
    """(exit 0, what was seen) for ``command`` bounded by ``timeout_s``; its process group is
    killed whole when it is done, so a probe such as ``sh -c "curl ..."`` that times out (or
    leaves a child behind) leaves nothing running."""
    proc = subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env),
        start_new_session=True,
    )
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout_s:g} s"
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return code == 0, f"exit code {code}"


def check_executable(command: Sequence[str]) -> None:
    """A command that cannot start is bad input (exit 2), found before anything starts."""
    if not command:
        raise ConfigError("stack.target.command", tuple(command), "a command to run locally")
    program = command[0]
    found = program if os.sep in program else shutil.which(program)
    if found is None or not os.path.exists(found):
        raise ConfigError("stack.target.command[0]", program, "an executable that exists")
    if not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise ConfigError(
            "stack.target.command[0]", program, "an executable file (chmod +x it, or fix the path)"
        )
