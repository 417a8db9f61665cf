"""A CPU or memory hog, started inside a replica's cgroup so that the replica's own limits
bound it (the local backend's ``cpu`` and ``memory`` faults):

    python -m stressbed.backends.local._hog cpu 0.8        # busy 80% of one core
    python -m stressbed.backends.local._hog memory 209715200

It runs until killed (the fault's end, or the replica's). The CPU hog is busy ``duty`` of each
100 ms period; the memory hog touches every page of what it holds, so the memory counts
against the cgroup at once (it may be what the OOM killer chooses).
"""

from __future__ import annotations

import sys
import time

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


def main(argv: list[str]) -> int:
    kind, amount = argv
    if kind == "cpu":
        burn(min(1.0, max(0.0, float(amount))))
    else:
        hold(int(amount))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
