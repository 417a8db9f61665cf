"""Test doubles that are part of the library, as httpx ships ``MockTransport``.

:class:`FakeBackend` implements :class:`~stressbed.backends.base.Backend` with no process at
all: its stack answers a URL (or fails to provision) and its fleet returns canned
:class:`~stressbed.results.runner_result.RunnerResult` documents, so what a run does with an
outcome (merge, verdict, exit code, reports, teardown) is tested without runners, a cluster or
a target (planning still checks what the plan's own backend needs, such as k6 on PATH)::

    report = execute(plan(RunOptions(scenario="ingest_mix")), backend=FakeBackend(results))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .backends.base import (
    Backend,
    Capability,
    EventSink,
    Fleet,
    FleetOutcome,
    FleetSpec,
    Health,
    Judge,
    Progress,
    Stack,
    new_event,
)
from .results.runner_result import RunnerResult
from .scenario.faults import Fault
from .scenario.thresholds import Threshold
from .stack.spec import StackSpec

__all__ = ["FakeBackend"]


class _CannedStack:
    def __init__(
        self,
        url: str,
        fail: BaseException | None,
        teardown_fail: BaseException | None = None,
        on_teardown: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.fail = fail
        self.teardown_fail = teardown_fail
        self.on_teardown = on_teardown
        self.torn_down = False
        self._events: list[dict[str, Any]] = []
        #: (faults, started_at) of each schedule_faults call.
        self.scheduled: list[tuple[tuple[Fault, ...], float]] = []

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def provision(self) -> str:
        self._events.append(new_event("stack", "stack-created"))
        if self.fail is not None:
            raise self.fail
        return self.url

    def teardown(self) -> None:
        self.torn_down = True
        if self.on_teardown is not None:
            self.on_teardown()
        self._events.append(new_event("stack", "stack-deleted"))
        if self.teardown_fail is not None:
            raise self.teardown_fail

    def report(self) -> dict[str, Any]:
        return {"backend": "fake", "url": self.url}

    def schedule_faults(self, faults: Sequence[Fault], started_at: float) -> None:
        self.scheduled.append((tuple(faults), started_at))

    def leftovers(self) -> str:
        return "nothing (a fake stack)"

    def failure(self) -> str | None:
        return None


class _CannedFleet:
    def __init__(self, outcome: Callable[[], FleetOutcome]) -> None:
        self.outcome = outcome

    def run(
        self,
        deadline_s: float,
        abort_thresholds: Sequence[Threshold] = (),
        judge: Judge | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        health: Health | None = None,
        *,
        on_start: Callable[[float], None] | None = None,
    ) -> FleetOutcome:
        outcome = self.outcome()
        if on_start is not None and outcome.started_at is not None:
            on_start(outcome.started_at)
        return outcome


class FakeBackend(Backend):
    """A backend with no processes: the stack answers ``url`` (or raises ``provision_error``;
    its teardown calls ``on_teardown``, then raises ``teardown_error`` after recording it) and
    the fleet returns
    ``results`` (RunnerResult documents) as its outcome, or whatever ``outcome()`` returns
    (or raises).

    The stacks it made are kept in :attr:`stacks`, so a test can check they were torn down;
    the fleets' arguments in :attr:`fleets`.
    """

    name = "fake"
    capabilities = frozenset(Capability)

    def __init__(
        self,
        results: Sequence[RunnerResult] = (),
        *,
        url: str = "http://127.0.0.1:9",
        provision_error: BaseException | None = None,
        teardown_error: BaseException | None = None,
        outcome: Callable[[], FleetOutcome] | None = None,
        on_teardown: Callable[[], None] | None = None,
    ) -> None:
        self.results = list(results)
        self.on_teardown = on_teardown
        self.url = url
        self.provision_error = provision_error
        self.teardown_error = teardown_error
        self._outcome = outcome
        self.stacks: list[_CannedStack] = []
        self.fleets: list[tuple[FleetSpec, dict[str, str]]] = []

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> FakeBackend:
        return cls()

    def stack(
        self,
        spec: StackSpec,
        work_dir: Path,
        on_event: EventSink | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> Stack:
        made = _CannedStack(self.url, self.provision_error, self.teardown_error, self.on_teardown)
        self.stacks.append(made)
        return made

    def fleet(self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]) -> Fleet:
        self.fleets.append((spec, dict(env)))
        if self._outcome is not None:
            return _CannedFleet(self._outcome)
        results = self.results
        started = min((r.started_at for r in results), default=time.time())
        return _CannedFleet(
            lambda: FleetOutcome(results=list(results), started_at=started, start_skew_ms=0.0)
        )
