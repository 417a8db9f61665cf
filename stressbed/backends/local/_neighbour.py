"""The ``neighbour`` fault's processes: CPU burners and a memory holder (:mod:`._hog`) in a
cgroup of their own, a sibling of the replicas' with no limit (a plain process where no
cgroup can be made), never in the replicas' cgroups."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable

from ...fleet.process import die_with_parent
from ...scenario.faults import Fault
from . import _cgroups
from ._cgroups import ReplicaCgroup

__all__ = ["start_neighbour"]


def start_neighbour(
    fault: Fault,
) -> tuple[ReplicaCgroup | None, list[subprocess.Popen[bytes]], str]:
    """Start ``fault``'s neighbour: its cgroup (None: none could be made), its processes, and
    how, in words, for its ``fault-applied`` event."""
    cores = fault.param("cores") or float(os.cpu_count() or 1)
    count = max(1, math.ceil(cores))
    work = [("cpu", f"{cores / count:.3f}")] * count
    held = fault.param("memory")
    if held:
        work.append(("memory", str(int(held))))
    group = _cgroups.create(f"neighbour-{fault.name}", None, None)
    started = []
    for kind, amount in work:
        orphan_guard = die_with_parent()

        def before_exec(guard: Callable[[], None] = orphan_guard) -> None:
            guard()
            if group is not None:
                group.enter()

        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "stressbed.backends.local._hog", kind, amount],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=before_exec,  # noqa: PLW1509 - prctl and a cgroup write
            )
        )
    where = "a cgroup of its own" if group is not None else "a process of its own"
    how = f"{where} beside the replicas: {count} burner(s) of {cores:g} cores"
    return group, started, how + (f", {held / 2**20:g}Mi held" if held else "")
