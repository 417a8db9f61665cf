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
from typing import Protocol

__all__ = ["balancer_reading", "open_files"]


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


class _Workers(Protocol):
    @property
    def pids(self) -> list[int]: ...

    def failure(self) -> str | None: ...

    def connections(self) -> dict[str, int]: ...


def balancer_reading(
    balancer: _Workers | None, replicas: set[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """The balancer's busiest worker's open files (:func:`balancer_files`), and its open
    connections to each of ``replicas`` as its workers said last (within a second: the
    controller's thread never waits on them)."""
    if balancer is None:
        return {}, {}
    opened = balancer.connections().items()
    return balancer_files(balancer), {name: n for name, n in opened if name in replicas}


def balancer_files(balancer: _Workers | None) -> dict[str, int]:
    """The busiest balancer worker's open files and its limit (each worker has its own: the
    first to run out refuses connections), or nothing when not read."""
    if balancer is None or balancer.failure() is not None:
        return {}
    seen = [open_files(pid) for pid in balancer.pids]
    counted = [(files, limit) for files, limit in seen if files is not None]
    if not counted:
        return {}
    files, limit = max(counted, key=lambda pair: pair[0])
    return {"open_files": files} | ({"nofile_limit": limit} if limit is not None else {})
