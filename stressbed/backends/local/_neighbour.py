"""The ``neighbour`` fault's processes: CPU burners and a memory holder (:mod:`._hog`) in a
cgroup of their own, a sibling of the replicas' with no limit (a plain process where no
cgroup can be made), never in the replicas' cgroups."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from ...fleet.process import die_with_parent
from ...scenario.faults import Fault
from . import _cgroups
from ._cgroups import ReplicaCgroup
from ._hog import burners, spawn

__all__ = ["start_neighbour"]


def start_neighbour(
    fault: Fault,
) -> tuple[ReplicaCgroup | None, list[subprocess.Popen[bytes]], str]:
    """Start ``fault``'s neighbour: its cgroup (None: none could be made), its processes, and
    how, in words, for its ``fault-applied`` event."""
    cores = fault.param("cores") or float(os.cpu_count() or 1)
    cpu, held = burners(cores), fault.param("memory")
    work = [*cpu, *([("memory", str(int(held)))] if held else [])]
    group = _cgroups.create(f"neighbour-{fault.name}", None, None)
    started = []
    for kind, amount in work:
        orphan_guard = die_with_parent()

        def before_exec(guard: Callable[[], None] = orphan_guard) -> None:
            guard()
            if group is not None:
                group.enter()

        started.append(spawn(kind, amount, before_exec))
    where = "a cgroup of its own" if group is not None else "a process of its own"
    how = f"{where} beside the replicas: {len(cpu)} burner(s) of {cores:g} cores"
    return group, started, how + (f", {held / 2**20:g}Mi held" if held else "")
