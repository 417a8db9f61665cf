"""A CPU, memory or IO hog, started inside a replica's cgroup so that the replica's own
limits bound it (the local backend's ``cpu``, ``memory`` and ``io`` faults), or in a
neighbour's beside it:

    python -m stressbed.backends.local._hog cpu 0.8        # busy 80% of one core
    python -m stressbed.backends.local._hog memory 209715200
    python -m stressbed.backends.local._hog io /path/to/its/file

It runs until killed (the fault's end, or the replica's). The CPU hog is busy ``duty`` of each
100 ms period; the memory hog touches every page of what it holds, so the memory counts
against the cgroup at once (it may be what the OOM killer chooses). The IO hog writes its
file (:data:`IO_FILE_BYTES`, over and over) and reads each block back, past the page cache
(``O_DIRECT``): the IO the kernel's blkio throttle and weight act on, charged to the hog's
cgroup (cached writes are written back later by the kernel's flusher, outside it, on cgroup
v1). Where the filesystem has no direct IO (a tmpfs) each write is synced instead. A full
disk does not end it: it waits a moment and writes again. Whoever starts it removes its
file. :func:`spawn` starts one (the ``cpu``, ``memory``, ``io`` and ``neighbour`` faults),
:func:`burners` says how many for a number of cores.
"""

from __future__ import annotations

import errno
import math
import mmap
import os
import subprocess
import sys
import time
from collections.abc import Callable

PERIOD_S = 0.1
PAGE = 4096
#: The IO hog's file: written and read back in blocks of IO_BLOCK, from its start again.
IO_FILE_BYTES = 32 * 2**20
IO_BLOCK = 256 * 2**10


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


def churn(path: str) -> None:
    """Write ``path`` block by block and read each block back, past the page cache, until
    killed; a write the disk has no room for is tried again a moment later."""
    block = mmap.mmap(-1, IO_BLOCK)  # page-aligned, as O_DIRECT needs
    block.write(os.urandom(IO_BLOCK))
    flags = os.O_RDWR | os.O_CREAT
    try:
        fd, direct = os.open(path, flags | os.O_DIRECT, 0o600), True
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        fd, direct = os.open(path, flags, 0o600), False  # a tmpfs: synced writes instead
    offset = 0
    while True:
        try:
            os.pwrite(fd, block, offset)
            if not direct:
                os.fsync(fd)
            os.preadv(fd, [block], offset)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            time.sleep(PERIOD_S)
        offset = (offset + IO_BLOCK) % IO_FILE_BYTES


def burners(cores: float) -> list[tuple[str, str]]:
    """``cores`` of CPU as CPU hogs of one core at most each, all equally busy."""
    count = max(1, math.ceil(cores))
    return [("cpu", f"{cores / count:.3f}")] * count


def spawn(kind: str, amount: str, before_exec: Callable[[], None]) -> subprocess.Popen[bytes]:
    """A hog of ``kind`` (``cpu``: a duty, ``memory``: bytes, ``io``: its file) in a session
    of its own, ``before_exec`` run in the child first (the parent-death signal, a cgroup to
    enter)."""
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
    elif kind == "io":
        churn(amount)
    else:
        hold(int(amount))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
