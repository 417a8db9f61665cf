"""The seam between the local stack's controller and what runs its replicas.

:class:`~stressbed.backends.local.LocalStack` decides, with Kubernetes semantics (probes,
restarts with back-off, the HPA, the quota, faults); a :class:`ReplicaRuntime` passed to it
runs. The runtime prepares what every replica shares, then makes one :class:`ReplicaRun` per
start of a replica, which the controller starts, watches (``poll``), measures (``usage``),
signals, freezes, kills and closes. Two runtimes run something: processes on this machine
(:class:`~stressbed.backends.local.ProcessRuntime`, the default) and the Docker backend's
containers. :class:`FakeRuntime` runs nothing, so that the controller is tested without a
process or a container (the load balancer aside), as httpx's ``MockTransport`` tests a client.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ...scenario.faults import Fault
from ...stack.spec import StackSpec
from ._cgroups import ReplicaCgroup
from ._datafs import DataFs
from ._neighbour import Neighbour, start_neighbour

__all__ = ["Exit", "FakeReplica", "FakeRuntime", "Launch", "ReplicaRun", "ReplicaRuntime", "Usage"]


@dataclass(frozen=True)
class Exit:
    """How a replica's run ended."""

    code: int | None  # exit code, None when a signal ended it
    signal: int | None
    oom_killed: bool

    @property
    def reason(self) -> str:
        if self.oom_killed:
            return "OOMKilled"
        if self.signal is not None:
            try:
                return f"killed by {signal.Signals(self.signal).name}"
            except ValueError:  # a real-time signal has no name
                return f"killed by signal {self.signal}"
        return f"exited with code {self.code}"


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float  # CPU time used since the run started
    memory: int  # working set in bytes
    #: The cgroup's CFS periods so far and those in which the quota throttled it (None
    #: without a cgroup): the share throttled says a replica is held back by its CPU limit.
    periods: tuple[int, int] | None = None
    #: Files it holds open now and the most it may (its RLIMIT_NOFILE); None: not read.
    open_files: int | None = None
    nofile_limit: int | None = None
    #: Its processes now, their limit (None: none) and the forks refused at it so far; None
    #: without a pids cgroup.
    pids: tuple[int, int | None, int] | None = None
    #: Per direction (read, write): bytes done on its disks so far and its lowest throttle
    #: (bytes a second, None: none); None without an IO cgroup.
    io: Mapping[str, tuple[int, int | None]] | None = None
    #: Seconds its threads waited for a CPU so far (run-queue delay); None: not read.
    cpu_wait_s: float | None = None


@dataclass(frozen=True)
class Launch:
    """What the controller asks of a runtime for one start of replica :attr:`name`."""

    name: str
    spec: StackSpec
    work_dir: Path  # the stack's: the shared data under ``data``, the logs under ``replicas``
    #: What the controller adds to the spec's env (the secrets, the fault hook's token):
    #: never an event, a log line or a file.
    extra_env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def log(self) -> Path:
        return self.work_dir / "replicas" / f"{self.name}.log"

    def fill(self, parts: Sequence[str], data: str, port: int, host: str) -> list[str]:
        """``parts`` (a command, its arguments) with ``{port}``, ``{host}`` and ``{data}``."""
        return [
            part.replace("{port}", str(port)).replace("{host}", host).replace("{data}", data)
            for part in parts
        ]

    def env(
        self, data: str, port: int, host: str, inherited: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The replica's environment: ``inherited`` (what the runtime passes on of its own),
        the spec's (``{data}`` filled in), the controller's, ``PORT`` and ``HOST``."""
        return {
            **(inherited or {}),
            **{k: v.replace("{data}", data) for k, v in self.spec.target.env},
            **self.extra_env,
            "PORT": str(port),
            "HOST": host,
        }


class ReplicaRun(ABC):
    """One start of a replica, as the controller drives it: started once, then watched,
    measured, signalled (frozen where it can be), and closed, which leaves nothing of it."""

    name: str
    env: dict[str, str]
    #: Where it answers: ``host`` ("" for the stack's own, known once started) and ``port``.
    host: str = ""
    port: int = 0
    #: Its cgroups on this host, for a hog to enter (None: no cgroup to hold a hog to).
    group: ReplicaCgroup | None = None
    #: The open-file limit it runs with, once started (None: not read): each connection it
    #: holds is a descriptor.
    nofile: int | None = None
    #: How a fault of a kind is applied to it, where that is not the local backend's way.
    how: ClassVar[Mapping[str, str]] = {}

    @property
    def enforcement(self) -> str:
        """How its limits are held (said once per stack)."""
        return "not enforced"

    @property
    def enforced(self) -> bool:
        """Whether its limits are enforced, not only advice."""
        return False

    @property
    def isolation(self) -> dict[str, str]:
        """How each limit beyond CPU and memory (pids, io.*, nofile, ephemeral storage) is
        held, or why it is not ("not enforced: ..."); {} when the spec sets none."""
        return {}

    @abstractmethod
    def start(self) -> dict[str, object]:
        """Start it (OSError: it could not start, a crash); what names it, for its event."""

    @abstractmethod
    def poll(self) -> Exit | None:
        """How it ended, or None while it runs: a wait that never blocks."""

    @abstractmethod
    def usage(self) -> Usage | None:
        """CPU time and working set now; None once it ended or where nothing was read."""

    @abstractmethod
    def signal(self, signum: int) -> None:
        """Send ``signum`` to everything of it (nothing once it ended)."""

    def kill(self) -> None:
        """SIGKILL everything of it."""
        self.signal(signal.SIGKILL)

    @property
    def can_freeze(self) -> bool:
        """Whether :meth:`freeze` stops it whole at once (else a pause is SIGSTOP)."""
        return False

    def freeze(self, frozen: bool) -> bool:
        """Freeze (or thaw) it whole; False where that did not take."""
        return False

    def exec_probe(self, command: Sequence[str], timeout_s: float) -> tuple[bool, str]:
        """An exec probe: ``command`` run beside it, bounded by ``timeout_s``."""
        return False, "this runtime runs no exec probe"

    def close(self) -> None:
        """Kill whatever is left of it, and remove what it held."""
        self.kill()


class ReplicaRuntime(ABC):
    """What runs a stack's replicas: passed to the stack's controller, one method required."""

    #: Where the stack's load balancer listens besides the stack's own host, once prepared
    #: (a network's gateway, for replicas and runners that are not on this host's loopback).
    listen_also: tuple[str, ...] = ()
    #: The stack's data folder as a filesystem of its own, once prepared (a ``disk_fill``
    #: fault fills that, and nothing else); None: none was made.
    data_fs: DataFs | None = None

    def prepare(self, spec: StackSpec, work_dir: Path, say: Callable[..., None]) -> None:
        """What must hold, and what every replica shares, before anything starts (``say``
        records a stack event); raises ConfigError or ProvisionError. Nothing, here."""
        return

    def neighbour(self, fault: Fault, work_dir: Path) -> Neighbour:
        """Start ``fault``'s noisy neighbour beside the replicas, outside their cgroups:
        here, hogs in a sibling cgroup of this machine's (:mod:`._neighbour`). Raises
        OSError where it cannot start."""
        return start_neighbour(fault, work_dir)

    @abstractmethod
    def launch(self, launch: Launch) -> ReplicaRun:
        """One start of a replica, not started yet, its :attr:`~ReplicaRun.port` set."""

    #: The teardown step of :meth:`release`: what it says in a failure, and its time.
    release_step: tuple[str, float] = ("release the replicas' runtime", 30.0)

    def release(self) -> None:
        """What the runtime itself holds (a network, what remains of its replicas) removed:
        the stack's last teardown step, after every replica's own; raises ProvisionError
        naming what is left. Nothing, here."""
        return


class FakeReplica(ReplicaRun):
    """A replica that runs nothing: it passes exec probes while :attr:`ready`, reports
    :attr:`used`, ends when :meth:`end` is called or on SIGTERM and SIGKILL, and records the
    signals it was sent and whether it is frozen."""

    def __init__(self, name: str, port: int, env: Mapping[str, str]) -> None:
        self.name = name
        self.port = port
        self.env = dict(env)
        self.ready = True
        self.used: Usage | None = Usage(0.0, 0)
        self.started = False
        self.frozen = False
        self.closed = False
        self.signals: list[int] = []
        self.exit: Exit | None = None

    def start(self) -> dict[str, object]:
        self.started = True
        return {"fake": self.name}

    def end(self, code: int = 1) -> None:
        """It exits with ``code`` (what the controller sees at its next poll)."""
        self.exit = self.exit or Exit(code, None, False)

    def poll(self) -> Exit | None:
        return self.exit

    def usage(self) -> Usage | None:
        return None if self.exit is not None else self.used

    def signal(self, signum: int) -> None:
        if self.exit is not None:
            return
        self.signals.append(signum)
        if signum in (signal.SIGTERM, signal.SIGKILL) and not self.frozen:
            self.exit = Exit(None, signum, False)

    @property
    def can_freeze(self) -> bool:
        return self.exit is None

    def freeze(self, frozen: bool) -> bool:
        self.frozen = frozen
        return True

    def exec_probe(self, command: Sequence[str], timeout_s: float) -> tuple[bool, str]:
        return self.ready and not self.frozen, "ready" if self.ready else "not ready"

    def close(self) -> None:
        self.frozen = False  # as the freezer's thaw before a kill
        self.kill()
        self.closed = True


class FakeNeighbour(Neighbour):
    """The fake runtime's neighbour: nothing runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.how = "a fake neighbour (nothing runs)"
        self.running = True

    def stop(self) -> None:
        self.running = False


class FakeRuntime(ReplicaRuntime):
    """Launches :class:`FakeReplica` objects (each start a new one, in :attr:`launched`)."""

    def __init__(self) -> None:
        self.launched: list[FakeReplica] = []
        self.prepared = False
        #: The neighbours started, each the fault's name and whether it still runs.
        self.neighbours: list[FakeNeighbour] = []

    def prepare(self, spec: StackSpec, work_dir: Path, say: Callable[..., None]) -> None:
        self.prepared = True

    def neighbour(self, fault: Fault, work_dir: Path) -> FakeNeighbour:
        """A neighbour that burns nothing: recorded, and stopped when told."""
        made = FakeNeighbour(fault.name)
        self.neighbours.append(made)
        return made

    def launch(self, launch: Launch) -> FakeReplica:
        port = launch.spec.target.port
        replica = FakeReplica(launch.name, port, launch.env("/data", port, "fake"))
        self.launched.append(replica)
        return replica

    def running(self, name: str) -> FakeReplica:
        """The latest start of replica ``name``."""
        return next(r for r in reversed(self.launched) if r.name == name)
