"""The Docker stack: the local stack's controller, its replicas containers on the run's network.

Everything that decides is the local backend's (:class:`~stressbed.backends.local.LocalStack`
and the pure controllers under it): the probes and their Kubernetes semantics, the restart
policy with CrashLoopBackOff's doubling, the HPA algorithm, the quota and the LimitRange, the
faults, the events and the usage series. What differs is what runs a replica: a container of
the target's image (:class:`._container.ContainerReplica`) with the limits and security the
local backend cannot enforce, on a bridge network of the run's own. The balancer stays on
127.0.0.1 (the stack's URL) and listens on that network's gateway too, so runner containers
reach the same readiness-gated URL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ...errors import ProvisionError
from ...stack.spec import StackSpec
from .._teardown import Step
from ..local import ReplicaRun
from ..local.balancer import BalancerProcess
from ..local.stack import LocalOptions, LocalStack, _Replica
from ._container import DATA_DIR, ContainerReplica, Placement
from ._engine import Registry, writable_by

__all__ = ["DockerStack", "RunNetwork"]

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


class DockerStack(LocalStack):
    """A provisioned stack of containers: :attr:`url` (on 127.0.0.1) routes to ready ones."""

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
    ) -> None:
        super().__init__(spec, work_dir, options, on_event, secrets)
        self.registry = registry
        self.network = network
        self._image_of = image
        self._placement: Placement | None = None
        self._network_name = ""

    # -- what differs from the local stack ----------------------------------------------

    def _prepare(self) -> None:
        image = self._image_of()  # built from the checkout, or found on the engine
        network = self.network.ensure()
        # {data}: shared by every replica, kept with the run (the engine takes absolute paths).
        data = (self.work_dir / "data").resolve()
        data.mkdir(parents=True, exist_ok=True)
        user = self.spec.security.run_as_user
        writable_by(data, user)
        self._placement = Placement(self.registry, network, image, data, f"{user}:{user}")
        self._network_name = network
        self._event("network", network=network, gateway=self.network.gateway, image=image)

    def _make_balancer(self) -> BalancerProcess:
        return BalancerProcess(self.options.host, self.options.port, also=(self.network.gateway,))

    def _launch(self, replica: _Replica) -> ReplicaRun:
        spec = self.spec
        assert self._placement is not None
        replica.port = spec.target.port  # its own address: the target's port, as in a pod
        args = [
            part.replace("{port}", str(replica.port))
            .replace("{host}", "0.0.0.0")
            .replace("{data}", DATA_DIR)
            for part in spec.target.image_args
        ]
        env = self._replica_env(DATA_DIR, replica.port, "0.0.0.0", inherit=False)
        return ContainerReplica(
            replica.name,
            self._placement,
            args,
            env,
            self.work_dir / "replicas" / f"{replica.name}.log",
            cpu_limit_m=spec.limits.cpu_m,
            memory_limit=spec.limits.memory,
            cpu_request_m=spec.requests.cpu_m,
            memory_request=spec.requests.memory,
            security=spec.security,
        )

    # -- reporting ------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        report = super().report()
        security = self.spec.security
        report.update(
            backend="docker",
            enforcement="docker",
            security={
                "user": security.run_as_user,
                "read_only_root_filesystem": security.read_only_root_filesystem,
                "capabilities": "all dropped",
                "no_new_privileges": True,
                "network": self._network_name,
            },
            image=self._placement.image if self._placement is not None else "",
            labels={"stressbed.run": self.registry.run},
        )
        return report

    def _removal_steps(self) -> list[Step]:
        # The containers and the network last, whatever the steps before got to.
        removal = Step("remove the containers", self._remove_all, REMOVE_TIMEOUT_S)
        return [*super()._removal_steps(), removal]

    def _remove_all(self) -> None:
        left = self.registry.remove_all()
        self.network.forget()
        if left:
            raise ProvisionError("teardown left " + "; ".join(left))

    def leftovers(self) -> str:
        return (
            f"containers and the network labelled stressbed.run={self.registry.run}: the next "
            "docker run removes them, or stressbed gc"
        )
