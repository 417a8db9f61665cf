"""Backends: where the stack runs and where the fleet runs, behind one small interface.

A run asks its backend for two things:

- ``stack(spec, work_dir)``: a :class:`Stack` for the StackSpec, not yet started. The run
  calls :meth:`Stack.provision` (which returns the URL the fleet loads) inside a ``try`` whose
  ``finally`` calls :meth:`Stack.teardown`, so teardown is registered before anything exists;
- ``fleet(bundle, out_dir, spec, env)``: a :class:`Fleet` whose ``run`` drives the load and
  returns a :class:`~stressbed.fleet.FleetOutcome`.

:class:`LocalBackend` runs both on this machine. :class:`FakeBackend` returns canned results
with no process at all, so planning, reporting and the CLI are tested without k6.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .collect import Aggregate
from .fleet import FleetOutcome, FleetSpec, LocalFleet, Progress
from .local import LocalOptions, LocalStack
from .result import RunnerResult
from .stack import StackSpec
from .thresholds import Threshold

__all__ = [
    "BACKENDS",
    "Backend",
    "ExistingService",
    "FakeBackend",
    "Fleet",
    "LocalBackend",
    "Stack",
]

Judge = Callable[[Threshold, dict[str, Aggregate], float], bool]
EventSink = Callable[[dict[str, Any]], None]


class Stack(Protocol):
    url: str
    events: list[dict[str, Any]]

    def provision(self) -> str:
        """Bring the stack up; the URL once it is ready. Raises ProvisionError."""
        ...

    def teardown(self) -> None:
        """Remove everything provision created, whatever state it got to. Idempotent."""
        ...

    def report(self) -> dict[str, Any]:
        """What summary.json says about the stack."""
        ...


class Fleet(Protocol):
    def run(
        self,
        deadline_s: float,
        abort_thresholds: Sequence[Threshold] = (),
        judge: Judge | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> FleetOutcome: ...


class Backend(Protocol):
    name: str

    def stack(
        self,
        spec: StackSpec,
        work_dir: Path,
        on_event: EventSink | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> Stack: ...

    def fleet(
        self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]
    ) -> Fleet: ...


class ExistingService:
    """``--target-url``: a service someone else runs; nothing to provision or remove."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[dict[str, Any]] = []

    def provision(self) -> str:
        return self.url

    def teardown(self) -> None:
        return  # someone else's service: nothing of ours to remove

    def report(self) -> dict[str, Any]:
        return {"backend": "none", "url": self.url}


class LocalBackend:
    """Replicas, probes, balancer and autoscaler on this machine; a local k6 fleet."""

    name = "local"

    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()

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


class _CannedStack:
    def __init__(self, url: str, fail: BaseException | None) -> None:
        self.url = url
        self.fail = fail
        self.events: list[dict[str, Any]] = []
        self.torn_down = False

    def provision(self) -> str:
        self.events.append({"t": time.time(), "source": "stack", "event": "stack-created"})
        if self.fail is not None:
            raise self.fail
        return self.url

    def teardown(self) -> None:
        self.torn_down = True
        self.events.append({"t": time.time(), "source": "stack", "event": "stack-deleted"})

    def report(self) -> dict[str, Any]:
        return {"backend": "fake", "url": self.url}


class _CannedFleet:
    def __init__(self, outcome: Callable[[], FleetOutcome]) -> None:
        self.outcome = outcome

    def run(
        self,
        deadline_s: float,
        abort_thresholds: Sequence[Threshold] = (),
        judge: Judge | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> FleetOutcome:
        return self.outcome()


class FakeBackend:
    """A backend with no processes: the stack answers ``url`` (or raises ``provision_error``)
    and the fleet returns ``results`` (RunnerResult documents) as its outcome.

    The stacks it made are kept in :attr:`stacks`, so a test can check they were torn down.
    """

    name = "fake"

    def __init__(
        self,
        results: Sequence[RunnerResult] = (),
        *,
        url: str = "http://127.0.0.1:9",
        provision_error: BaseException | None = None,
        outcome: Callable[[], FleetOutcome] | None = None,
    ) -> None:
        self.results = list(results)
        self.url = url
        self.provision_error = provision_error
        self._outcome = outcome
        self.stacks: list[_CannedStack] = []

    def stack(
        self,
        spec: StackSpec,
        work_dir: Path,
        on_event: EventSink | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> Stack:
        made = _CannedStack(self.url, self.provision_error)
        self.stacks.append(made)
        return made

    def fleet(self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]) -> Fleet:
        if self._outcome is not None:
            return _CannedFleet(self._outcome)
        results = self.results
        started = min((r.started_at for r in results), default=time.time())
        return _CannedFleet(
            lambda: FleetOutcome(results=list(results), started_at=started, start_skew_ms=0.0)
        )


def _kubernetes() -> Backend:
    from .kube import KubernetesBackend  # noqa: PLC0415 - needs the kubernetes extra

    return KubernetesBackend()


#: The backends ``--backend`` accepts.
BACKENDS: dict[str, Callable[[], Backend]] = {"local": LocalBackend, "kubernetes": _kubernetes}
