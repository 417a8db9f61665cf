"""Open files of a process on this machine: how many it holds and the most it may hold.

Every connection is a file descriptor. A replica serving thousands of agents' WebSockets (and
the balancer, which holds two per connection: the client's and the replica's) meets its
``RLIMIT_NOFILE`` long before its CPU or memory: past it, ``accept`` fails with EMFILE and new
connections are refused or reset. The local stack samples both, once a second, beside CPU and
memory, so that a capacity search can name the limit (:mod:`stressbed.results.agent_causes`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["open_files"]


def open_files(pid: int) -> tuple[int | None, int | None]:
    """(files open now, its soft RLIMIT_NOFILE) of process ``pid``; None for what cannot be
    read (the process is gone, /proc is not there, or an unlimited limit)."""
    try:
        count: int | None = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        count = None
    return count, _soft_limit(pid)


def _soft_limit(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files") :].split()[0]
            return int(soft) if soft.isdigit() else None
    return None
