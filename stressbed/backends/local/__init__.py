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

from .backend import LocalBackend
from .fleet import LocalFleet
from .stack import LocalOptions, LocalStack

__all__ = ["LocalBackend", "LocalFleet", "LocalOptions", "LocalStack"]
