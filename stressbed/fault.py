"""The public namespace ``stressbed.fault``: faults a scenario declares beside its load (see
docs/guides/faults.md). The definitions live in :mod:`stressbed.scenario.faults`.
"""

from .scenario.faults import (
    bandwidth,
    cpu,
    dependency,
    disk_fill,
    io,
    kill,
    latency,
    loss,
    memory,
    neighbour,
    pause,
    reset_connections,
    restart,
    rolling_restart,
    slow_close,
    slow_disk,
)

__all__ = [
    "bandwidth",
    "cpu",
    "dependency",
    "disk_fill",
    "io",
    "kill",
    "latency",
    "loss",
    "memory",
    "neighbour",
    "pause",
    "reset_connections",
    "restart",
    "rolling_restart",
    "slow_close",
    "slow_disk",
]
