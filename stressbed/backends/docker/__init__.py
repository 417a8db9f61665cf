"""The Docker backend: the local backend's stack and fleet, each replica and runner a container.

It owns what runs on the engine: the connection and the labels every object carries, the sweep
of what a killed run left (``_engine``); the base image made from Debian packages and the agent
and runner images built offline from the checkout (``images``); a replica as a container with a
pod's limits and security (``_container``); the stack, which is the local stack's controller
driving those containers on a network of the run's own (``stack``); a ``neighbour`` fault's
container beside them (``_neighbour``); and the runner containers (``fleet``). It may import
what the local backend may, and the local backend itself (whose controller, probes, balancer,
faults and fleet stages it reuses); never the app layer. The Docker SDK (``stressbed[docker]``)
is imported only here.
"""

from . import images
from ._engine import connect, sweep
from .backend import DockerBackend

__all__ = ["DockerBackend", "connect", "images", "sweep"]
