"""The ``neighbour`` fault's processes: CPU burners, a memory holder and an IO writer
(:mod:`._hog`) in a cgroup of their own, a sibling of the replicas' with no limit (a plain
process where no cgroup can be made), never in the replicas' cgroups. The IO writer's file is
beside the stack's data folder, on this machine's disk: the replicas' disk, unless their data
folder is a tmpfs of its own (a ``disk_fill``, an ``ephemeral-storage`` limit).

A runtime may run its neighbour otherwise (the Docker runtime: a container on the same
engine); what the faults hold of it is a :class:`Neighbour`: how it runs, in words, and how
to stop it."""

from __future__ import annotations

import contextlib
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from ...fleet.process import die_with_parent
from ...scenario.faults import Fault
from . import _cgroups
from ._cgroups import ReplicaCgroup
from ._hog import burners, spawn

__all__ = ["CgroupNeighbour", "Neighbour", "neighbour_work", "start_neighbour"]


class Neighbour(ABC):
    """A neighbour running beside the replicas, until :meth:`stop`."""

    #: How it runs, for its ``fault-applied`` event.
    how: str = ""

    @abstractmethod
    def stop(self) -> None:
        """Everything of it killed and removed (bounded); it is not started again."""


def neighbour_work(fault: Fault, io_file: str) -> tuple[list[tuple[str, str]], str]:
    """The hogs (kind, amount) of ``fault``'s neighbour and what they do, in words: its
    cores in burners (every core of this machine when it names none), its memory held, an
    IO writer on ``io_file``."""
    cores = fault.param("cores") or float(os.cpu_count() or 1)
    cpu, held = burners(cores), fault.param("memory")
    work = [*cpu, *([("memory", str(int(held)))] if held else [])]
    said = f"{len(cpu)} burner(s) of {cores:g} cores" + (
        f", {held / 2**20:g}Mi held" if held else ""
    )
    if fault.param("io"):
        work.append(("io", io_file))
        said += ", an IO writer on the replicas' disk"
    return work, said


class CgroupNeighbour(Neighbour):
    """The local neighbour: its hogs in a cgroup of their own."""

    def __init__(
        self,
        group: ReplicaCgroup | None,
        hogs: list[subprocess.Popen[bytes]],
        how: str,
        files: list[Path],
    ) -> None:
        self.group, self.hogs, self.how, self.files = group, hogs, how, files

    def stop(self) -> None:
        for hog in self.hogs:
            with contextlib.suppress(ProcessLookupError):
                hog.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                hog.wait(timeout=5)
        if self.group is not None:
            self.group.remove()  # what is left in it killed, then the cgroup
        for path in self.files:
            path.unlink(missing_ok=True)


def start_neighbour(fault: Fault, work_dir: Path) -> CgroupNeighbour:
    """Start ``fault``'s neighbour beside the replicas of the stack in ``work_dir``; OSError
    where one of its processes did not start (what did is stopped first: nothing is left)."""
    io_file = work_dir / f".stressbed-{fault.name}-io"
    work, said = neighbour_work(fault, str(io_file))
    group = _cgroups.create(f"neighbour-{fault.name}", None, None)
    where = "a cgroup of its own" if group is not None else "a process of its own"
    made = CgroupNeighbour(group, [], f"{where} beside the replicas: {said}", [io_file])
    for kind, amount in work:
        orphan_guard = die_with_parent()

        def before_exec(guard: Callable[[], None] = orphan_guard) -> None:
            guard()
            if group is not None:
                group.enter()

        try:
            made.hogs.append(spawn(kind, amount, before_exec))
        except (OSError, subprocess.SubprocessError) as exc:
            made.stop()
            raise OSError(f"its {kind} process did not start: {exc}") from None
    return made
