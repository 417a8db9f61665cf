"""The Docker stack: the local stack's controller, its replicas containers on the run's network.

Everything that decides is the local backend's (:class:`~stressbed.backends.local.LocalStack`
and the pure controllers under it): the probes and their Kubernetes semantics, the restart
policy with CrashLoopBackOff's doubling, the HPA algorithm, the quota and the LimitRange, the
faults, the events and the usage series. What differs is what runs a replica, and that is the
runtime the controller is given (:class:`ContainerRuntime`, a
:class:`~stressbed.backends.local.ReplicaRuntime`): a container of the target's image
(:class:`._container.ContainerReplica`) with the limits and security the local backend cannot
enforce, on a bridge network of the run's own; a ``neighbour`` fault's hogs in a container of
their own on the same engine (:mod:`._neighbour`). The balancer stays on 127.0.0.1 (the stack's
URL) and listens on that network's gateway too, so runner containers reach the same
readiness-gated URL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ...errors import ProvisionError, StressbedError
from ...scenario.faults import Fault
from ...stack.spec import StackSpec
from ..local import (
    Launch,
    LocalOptions,
    LocalStack,
    Neighbour,
    ReplicaRuntime,
    mount_data_folder,
)
from ._container import DATA_DIR, ContainerReplica, Limits, Placement
from ._engine import Registry, writable_by
from ._neighbour import start_neighbour

__all__ = ["ContainerRuntime", "DockerStack", "RunNetwork"]

#: How long removing a run's containers, volumes and network may take at teardown (each
#: Engine API call has its own timeout; a stack of many replicas makes many calls).
REMOVE_TIMEOUT_S = 300.0


class RunNetwork:
    """The run's bridge network: made once (registered first), shared by the stack and the
    fleet, removed with the run's other objects."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.name = ""
        self.gateway = ""

    def forget(self) -> None:
        """It was removed: a later fleet makes another."""
        if self.name not in self.registry.networks:
            self.name = self.gateway = ""

    def ensure(self) -> str:
        if self.name:
            return self.name
        registry = self.registry
        name = registry.network(registry.name("net"))
        try:
            registry.client.api.create_network(
                name, driver="bridge", labels=registry.labels("network"), check_duplicate=True
            )
            info = registry.client.api.inspect_network(name)
        except docker.errors.DockerException as exc:
            raise ProvisionError(f"the run's network {name} could not be made: {exc}") from None
        configs = (info.get("IPAM") or {}).get("Config") or [{}]
        self.gateway = str(configs[0].get("Gateway") or "")
        if not self.gateway:
            raise ProvisionError(f"the run's network {name} has no gateway address")
        self.name = name
        return name


class ContainerRuntime(ReplicaRuntime):
    """Replicas as containers of the target's image (found or built when the stack is
    prepared) on the run's network, each answering on the target's port at its own address,
    as a pod does. A neighbour is a container of ``neighbour_image`` (the runner image's
    tag, found or built: ahead, when the stack is prepared, with ``neighbour_ahead``). With
    ``data_size`` the data folder every replica bind-mounts is a tmpfs of that size of the
    stack's own (a ``disk_fill`` fills it, never this machine's disk), mounted before any
    container starts and unmounted after the last is removed."""

    def __init__(
        self,
        registry: Registry,
        network: RunNetwork,
        image: Callable[[], str],
        neighbour_image: Callable[[], str] | None = None,
        *,
        neighbour_ahead: bool = False,
        data_size: int | None = None,
    ) -> None:
        self.registry = registry
        self.data_size = data_size
        self.network = network
        self._image_of = image
        self.neighbour_image = neighbour_image
        self.neighbour_ahead = neighbour_ahead
        self.placement: Placement | None = None

    def prepare(self, spec: StackSpec, work_dir: Path, say: Callable[..., None]) -> None:
        image = self._image_of()  # built from the checkout, or found on the engine
        if self.neighbour_ahead and self.neighbour_image is not None:
            self.neighbour_image()  # not built at the fault's instant, in the controller's loop
        network = self.network.ensure()
        # {data}: shared by every replica, kept with the run (the engine takes absolute paths).
        data = (work_dir / "data").resolve()
        data.mkdir(parents=True, exist_ok=True)
        if self.data_size is not None:  # a disk_fill's, mounted before a container binds it
            self.data_fs = fs = mount_data_folder(data, self.data_size, "faults.disk_fill")
            say("data-mounted", path=str(fs.folder), fs="tmpfs", size=fs.size)
        user = spec.security.run_as_user
        writable_by(data, user)
        self.placement = Placement(self.registry, network, image, data, f"{user}:{user}")
        self.listen_also = (self.network.gateway,)
        say("network", network=network, gateway=self.network.gateway, image=image)

    def launch(self, launch: Launch) -> ContainerReplica:
        spec = launch.spec
        assert self.placement is not None, "launched before prepared"
        port = spec.target.port  # its own address: the target's port, as in a pod
        replica = ContainerReplica(
            launch.name,
            self.placement,
            launch.fill(spec.target.image_args, DATA_DIR, port, "0.0.0.0"),
            launch.env(DATA_DIR, port, "0.0.0.0"),  # nothing of stressbed's own environment
            launch.log,
            cpu_limit_m=spec.limits.cpu_m,
            memory_limit=spec.limits.memory,
            cpu_request_m=spec.requests.cpu_m,
            memory_request=spec.requests.memory,
            security=spec.security,
            limits=Limits.of(spec, self.placement.data),
        )
        replica.port = port
        return replica

    def neighbour(self, fault: Fault, work_dir: Path) -> Neighbour:
        """Start ``fault``'s neighbour as a container of its own on the same engine, outside
        the replicas' cgroups (:mod:`._neighbour`); OSError where it does not start."""
        if self.neighbour_image is None:
            raise OSError("this stack was given no image to run a neighbour container of")
        try:
            image = self.neighbour_image()
        except StressbedError as exc:
            raise OSError(f"no image to run it from: {exc}") from None
        return start_neighbour(self.registry, image, fault, work_dir)

    #: The containers and the network go last, whatever the steps before got to.
    release_step = ("remove the containers", REMOVE_TIMEOUT_S)

    def release(self) -> None:
        left = self.registry.remove_all()
        self.network.forget()
        if self.data_fs is not None and not left:  # no container holds it any more
            self.data_fs.unmount()
        elif self.data_fs is not None:  # `stressbed gc` unmounts it once this one is gone
            left.append(f"the data folder's tmpfs on {self.data_fs.folder}")
        if left:
            raise ProvisionError("teardown left " + "; ".join(left))


class DockerStack(LocalStack):
    """A provisioned stack of containers: :attr:`url` (on 127.0.0.1) routes to ready ones.
    The local stack with a :class:`ContainerRuntime`, and the engine's objects removed at
    teardown."""

    def __init__(  # noqa: PLR0917 - the local stack's arguments, then the engine's
        self,
        spec: StackSpec,
        work_dir: Path,
        registry: Registry,
        network: RunNetwork,
        image: Callable[[], str],
        options: LocalOptions | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        secrets: Mapping[str, str] | None = None,
        *,
        neighbour_image: Callable[[], str] | None = None,
        neighbour_ahead: bool = False,
        data_size: int | None = None,
    ) -> None:
        self.containers = ContainerRuntime(
            registry,
            network,
            image,
            neighbour_image,
            neighbour_ahead=neighbour_ahead,
            data_size=data_size,
        )
        super().__init__(spec, work_dir, options, on_event, secrets, self.containers)
        self.registry = registry
        self.network = network

    # -- reporting ------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        report = super().report()
        security = self.spec.security
        placement = self.containers.placement
        report.update(
            backend="docker",
            enforcement="docker",
            security={
                "user": security.run_as_user,
                "read_only_root_filesystem": security.read_only_root_filesystem,
                "capabilities": "all dropped",
                "no_new_privileges": True,
                "network": placement.network if placement is not None else "",
            },
            image=placement.image if placement is not None else "",
            labels={"stressbed.run": self.registry.run},
        )
        return report

    def leftovers(self) -> str:
        return (
            f"containers and the network labelled stressbed.run={self.registry.run}: the next "
            "docker run removes them, or stressbed gc"
        )
