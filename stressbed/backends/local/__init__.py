"""The local backend: a StackSpec run on this machine with Kubernetes semantics, and k6 runners
as local processes.

It owns the controller loop that applies the pure controllers of :mod:`stressbed.stack` to a
stack's replicas (``stack``), and the seam through which it drives them (``runtime``: a
replica runtime passed to the controller, with a fake that runs nothing); the process runtime
(``_replica``: process groups, cgroup limits or rlimits, OOM detection via ``_cgroups``),
running the probes (``_probing``), the usage feed (``_metrics``), the loopback load balancer
(``balancer``, a process; ``balancer_pool``, its workers on one port, sized for the
connections expected), and the local fleet (``fleet``). Another backend uses it through this
package's names or its public modules, never a private one. It may import
:mod:`stressbed.fleet`, :mod:`stressbed.stack`, :mod:`stressbed.results`,
:mod:`stressbed.scenario` and :mod:`stressbed.backends.base`; never the app layer.
"""

from ._cgroups import Device, ReplicaCgroup, device_of
from ._cgroups import sweep as sweep_cgroups
from ._datafs import fill_size as data_fill_size
from ._datafs import mount_own as mount_data_folder
from ._datafs import sweep as sweep_data_mounts
from ._faults import FAULT_KINDS
from ._inside import check_rate
from ._neighbour import Neighbour, neighbour_work
from ._replica import ProcessRuntime, ReplicaProcess
from .backend import LocalBackend, machine_options
from .fleet import LocalFleet, RunnerHandle
from .runtime import Exit, FakeReplica, FakeRuntime, Launch, ReplicaRun, ReplicaRuntime, Usage
from .stack import LocalOptions, LocalStack

# What another backend built on this one's controller uses (the Docker backend's runtime
# launches containers where this one's launches processes: the same Exit, Usage and cgroup view).
__all__ = [
    "FAULT_KINDS",
    "Device",
    "Exit",
    "FakeReplica",
    "FakeRuntime",
    "Launch",
    "LocalBackend",
    "LocalFleet",
    "LocalOptions",
    "LocalStack",
    "Neighbour",
    "ProcessRuntime",
    "ReplicaCgroup",
    "ReplicaProcess",
    "ReplicaRun",
    "ReplicaRuntime",
    "RunnerHandle",
    "Usage",
    "check_rate",
    "data_fill_size",
    "device_of",
    "machine_options",
    "mount_data_folder",
    "neighbour_work",
    "sweep_cgroups",
    "sweep_data_mounts",
]
