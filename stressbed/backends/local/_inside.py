"""What the faults start inside a replica's own cgroup, so that its limits bound them: the
hogs of the ``cpu``, ``memory`` and ``io`` faults (:mod:`._hog`, moved in before they run),
and the ``slow_disk`` fault's lower throttle on the disk of the replicas' data folder (the
cgroup's blkio throttle, or io.max), undone at the fault's end.

The throttle holds what the kernel charges to the replica's cgroup: reads, direct writes and
writes it syncs (an fsync writes back in the caller's context). On cgroup v1 a cached write
that is never synced is written back later by the kernel's flusher, charged to no replica:
no throttle slows it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError
from ...fleet.process import die_with_parent
from ...scenario.faults import Fault
from ._cgroups import Device, ReplicaCgroup
from ._hog import spawn

__all__ = ["Slowed", "check_rate", "hogs_in", "slow"]


def check_rate(fault: Fault, backend: str) -> None:
    """A ``slow_disk`` here is a rate (the throttle holds one): one with only a latency is
    refused before anything starts."""
    if fault.kind == "slow_disk" and fault.param("bps") is None:
        raise ConfigError(
            f"faults.{fault.name}.latency",
            fault.label,
            f"a rate with --backend {backend}, like fault.slow_disk('1MiB/s'): the blkio "
            "throttle holds a rate; a delay per operation is Chaos Mesh's IOChaos (--backend "
            "kubernetes)",
        )


def hogs_in(group: ReplicaCgroup, work: Sequence[tuple[str, str]]) -> list[subprocess.Popen[bytes]]:
    """The hogs ``work`` names (kind, amount), each moved into ``group`` before it runs; one
    that cannot be is killed (outside the replica's limits it must not run at all)."""
    started = []
    for kind, amount in work:
        orphan_guard = die_with_parent()
        # Into the cgroup before it runs; into a frozen one only once it has exec'd (a
        # child entering it before exec would freeze there, and Popen wait for it).
        late = group.frozen

        def before_exec(guard: Callable[[], None] = orphan_guard, late: bool = late) -> None:
            guard()
            if not late:
                group.enter()

        hog = spawn(kind, amount, before_exec)
        if late:
            try:
                group.add(hog.pid)
            except OSError:
                hog.kill()
                hog.wait(timeout=5)
                continue
        started.append(hog)
    return started


@dataclass(frozen=True)
class Slowed:
    """One replica's throttle as a ``slow_disk`` left it, and how to put it back."""

    group: ReplicaCgroup
    undo: dict[Path, str]

    def restore(self) -> None:
        self.group.restore_io(self.undo)


def slow(groups: Sequence[ReplicaCgroup], device: Device, bps: int) -> tuple[list[Slowed], str]:
    """Each of ``groups`` throttled to ``bps`` on ``device``: the throttles set, and the
    first problem ("" where every one took it; none is left set when one did not)."""
    done: list[Slowed] = []
    for group in groups:
        try:
            done.append(Slowed(group, group.throttle_io(device, bps)))
        except OSError as exc:
            for item in done:
                item.restore()
            return [], f"the replica's IO throttle cannot be set ({exc})"
    return done, ""
