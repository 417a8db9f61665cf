"""How the local backend behaves: its options, the Kubernetes defaults scaled to a local run."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LocalOptions"]


@dataclass(frozen=True)
class LocalOptions:
    """How the local backend behaves; the Kubernetes defaults, scaled to a local run."""

    host: str = "127.0.0.1"
    port: int = 0  # the stack's port; 0 takes any free one
    hpa_sync_s: float = 5.0  # Kubernetes: 15 s
    metrics_window_s: float = 5.0  # CPU is averaged over this window (metrics-server: 15 s)
    backoff_base_s: float = 1.0  # CrashLoopBackOff: 10 s doubling...
    backoff_max_s: float = 30.0  # ...up to 300 s
    backoff_reset_s: float = 60.0  # ...reset after 10 min running
    ready_timeout_s: float = 90.0  # every initial replica ready within this
    teardown_grace_s: float = 10.0  # at teardown, SIGKILL after min(this, the grace period)
    cgroups: bool = True  # False: rlimit and advisory CPU, as where cgroups are not writable
    sample_s: float = 1.0
    #: The concurrent connections the stack's balancer is sized for (the simulated agents
    #: that each hold one open): its workers, one per ``balancer_pool.per_worker()``
    #: connections. None: not known, one worker (about 9,900 connections where a process may
    #: open 20,000 descriptors).
    connections: int | None = None
    #: The stack's data folder (``{data}``) a tmpfs of this many bytes, mounted when it is
    #: provisioned and unmounted at teardown: set when the run declares a ``disk_fill`` fault,
    #: which then fills that filesystem, never this machine's disk. None: a plain folder.
    data_size: int | None = None
