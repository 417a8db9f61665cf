"""The local backend: a StackSpec run on this machine with Kubernetes semantics, and k6 runners
as local processes.

It owns the replica processes (``_replica``: process groups, cgroup limits or rlimits, OOM
detection via ``_cgroups``), running the probes (``_probing``), the controller loop that
applies the pure controllers of :mod:`stressbed.stack` to them (``stack``), the usage feed
(``_metrics``), the loopback load balancer process (``balancer``), and the local fleet
(``fleet``). It may import :mod:`stressbed.fleet`, :mod:`stressbed.stack`,
:mod:`stressbed.results`, :mod:`stressbed.scenario` and :mod:`stressbed.backends.base`; never
the app layer.
"""

from ._cgroups import ReplicaCgroup
from ._cgroups import sweep as sweep_cgroups
from ._faults import FAULT_KINDS
from ._replica import Exit, ReplicaProcess, ReplicaRun, Usage
from .backend import LocalBackend, machine_options
from .fleet import LocalFleet, RunnerHandle
from .stack import LocalOptions, LocalStack

# What another backend built on this one's controller uses (the Docker backend's containers
# take a process's place: the same Exit, Usage and cgroup view).
__all__ = [
    "FAULT_KINDS",
    "Exit",
    "LocalBackend",
    "LocalFleet",
    "LocalOptions",
    "LocalStack",
    "ReplicaCgroup",
    "ReplicaProcess",
    "ReplicaRun",
    "RunnerHandle",
    "Usage",
    "machine_options",
    "sweep_cgroups",
]
