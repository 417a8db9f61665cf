"""A CPU or memory hog, started inside a replica's cgroup so that the replica's own limits
bound it (the local backend's ``cpu`` and ``memory`` faults):

    python -m stressbed.backends.local._hog cpu 0.8        # busy 80% of one core
    python -m stressbed.backends.local._hog memory 209715200

It runs until killed (the fault's end, or the replica's). The CPU hog is busy ``duty`` of each
100 ms period; the memory hog touches every page of what it holds, so the memory counts
against the cgroup at once (it may be what the OOM killer chooses). :func:`spawn` starts one
(the ``cpu``, ``memory`` and ``neighbour`` faults), :func:`burners` says how many for a
number of cores.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable

PERIOD_S = 0.1
PAGE = 4096


def burn(duty: float) -> None:
    """Busy ``duty`` of every period, asleep the rest, until killed."""
    while True:
        start = time.monotonic()
        busy_until = start + duty * PERIOD_S
        while time.monotonic() < busy_until:
            sum(range(1000))  # the work: CPU burnt in small slices between reads of the clock
        time.sleep(max(0.0, PERIOD_S - (time.monotonic() - start)))


def hold(size: int) -> None:
    """Hold ``size`` bytes, every page written, until killed."""
    ballast = bytearray(size)
    for offset in range(0, size, PAGE):
        ballast[offset] = 1
    while True:
        time.sleep(3600)


def burners(cores: float) -> list[tuple[str, str]]:
    """``cores`` of CPU as CPU hogs of one core at most each, all equally busy."""
    count = max(1, math.ceil(cores))
    return [("cpu", f"{cores / count:.3f}")] * count


def spawn(kind: str, amount: str, before_exec: Callable[[], None]) -> subprocess.Popen[bytes]:
    """A hog of ``kind`` (``cpu``: a duty, ``memory``: bytes) in a session of its own,
    ``before_exec`` run in the child first (the parent-death signal, a cgroup to enter)."""
    return subprocess.Popen(
        [sys.executable, "-m", "stressbed.backends.local._hog", kind, amount],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=before_exec,  # noqa: PLW1509 - prctl and a cgroup write
    )


def main(argv: list[str]) -> int:
    kind, amount = argv
    if kind == "cpu":
        burn(min(1.0, max(0.0, float(amount))))
    else:
        hold(int(amount))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
