"""The one interface every backend implements: where the stack runs and where the fleet runs.

A run (:mod:`stressbed.app.execute`) asks its backend, and only through these names:

- :meth:`Backend.from_options` builds it from the run's options that belong to it
  (:attr:`Backend.option_keys`), :meth:`Backend.preflight` checks what it needs before anything
  is created (a ConfigError, exit 2), and :attr:`Backend.capabilities` says which parts of the
  contract it honours, so the plan can refuse a combination instead of ignoring it;
- :meth:`Backend.stack` gives a :class:`Stack` for a StackSpec, not started: the run calls
  :meth:`Stack.provision` (the URL the fleet loads) inside a ``try`` whose ``finally`` calls
  :meth:`Stack.teardown`, so teardown is registered before anything exists;
- :meth:`Backend.fleet` gives a :class:`Fleet` whose :meth:`Fleet.run` drives the load and
  returns a :class:`FleetOutcome`.

Each producer owns its events and hands out copies (:attr:`Stack.events`,
:attr:`FleetOutcome.events`): an event is a JSON-ready dict with ``t`` (unix time), ``source``
(``stack`` or ``fleet``), ``event`` and its own fields. The test double is
:class:`stressbed.testing.FakeBackend`.
"""

from __future__ import annotations

import abc
import enum
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..fleet.live import Judge, Progress
from ..results.runner_result import RunnerResult
from ..scenario.faults import Fault
from ..scenario.model import Scenario
from ..scenario.thresholds import Threshold
from ..stack.spec import StackSpec

if TYPE_CHECKING:  # a type only: the runner image has no prometheus-client
    from ..results.live_series import LiveSeries

__all__ = [
    "Backend",
    "Capability",
    "EventSink",
    "Fleet",
    "FleetOutcome",
    "FleetSpec",
    "Health",
    "Judge",
    "Progress",
    "Stack",
    "new_event",
]


def new_event(source: str, kind: str, **fields: Any) -> dict[str, Any]:
    """An event as every producer writes it: when (unix time, unrounded, so that events of
    several producers keep their order when merged), who, what, and its own fields."""
    return {"t": time.time(), "source": source, "event": kind, **fields}


#: Called with each event as it happens (the live line); the producer keeps its own copy.
EventSink = Callable[[dict[str, Any]], None]


class Capability(enum.Enum):
    """Parts of the contract a backend may or may not honour."""

    #: It provisions a StackSpec (otherwise it can only load a ``--target-url``).
    PROVISION = "provision"
    #: Its fleet can load a service it did not provision (``--target-url``).
    EXISTING_TARGET = "existing-target"
    #: Its fleet judges ``abort_on_fail`` thresholds on live merged data and stops early.
    LIVE_ABORT = "live-abort"
    #: Its fleet reports :class:`Progress` while it runs (the live line).
    LIVE_PROGRESS = "live-progress"
    #: Fleet after fleet can run against one provisioned stack (a capacity search's probes).
    REPEATED_FLEETS = "repeated-fleets"
    #: Its stack's URL answers stressbed itself, not only the runners (the read-back of a
    #: scenario's writes after the load).
    READ_BACK = "read-back"


@dataclass(frozen=True)
class FleetSpec:
    runners: int
    keep_raw: bool = False
    ready_timeout_s: float = 120.0
    setup_timeout_s: float = 120.0
    #: Where the fleet seals each second all its runners have closed, live (None: nowhere).
    live: LiveSeries | None = None


@dataclass
class FleetOutcome:
    """What a fleet run returns: every runner's result and how the run ended."""

    results: list[RunnerResult]
    started_at: float | None = None
    start_skew_ms: float | None = None
    failure: str | None = None  # which runner failed and why
    failure_code: int = 3  # the run's exit code when it failed (3: infrastructure)
    note: str | None = None  # for an interrupted run: what its teardown could not finish
    aborted_by: Threshold | None = None  # an abortOnFail threshold that failed fleet-wide
    interrupted: bool = False
    timed_out: bool = False
    #: The fleet's own events (``source: fleet``), a list of its own.
    events: list[dict[str, Any]] = field(default_factory=list)


class Stack(Protocol):
    @property
    def url(self) -> str:
        """Where the fleet sends load; empty until provisioned."""
        ...

    @property
    def events(self) -> list[dict[str, Any]]:
        """A copy of the stack's events so far, in the order they happened."""
        ...

    def provision(self) -> str:
        """Bring the stack up; the URL once it is ready. Raises ProvisionError."""
        ...

    def teardown(self) -> None:
        """Remove everything provision created, whatever state it got to. Idempotent."""
        ...

    def report(self) -> dict[str, Any]:
        """What summary.json says about the stack."""
        ...

    def leftovers(self) -> str:
        """What may be left if its teardown is abandoned half way, and how to remove it."""
        ...

    def schedule_faults(self, faults: Sequence[Fault], started_at: float) -> None:
        """Apply ``faults`` at their instants from ``started_at`` (unix time: the fleet's
        release), each said as ``fault-applied`` / ``fault-ended`` events, every one undone by
        the end of :meth:`teardown`. Only kinds of :attr:`Backend.fault_kinds` are given."""
        ...

    def failure(self) -> str | None:
        """Why the provisioned stack stopped serving (its controller or balancer died), or
        None while it is fine; the fleet polls it and stops loading a dead URL."""
        ...


#: Polled by a running fleet: a reason to stop every runner now (the stack failed), or None.
Health = Callable[[], str | None]


class Fleet(Protocol):
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
        """Run every runner to the end (or the deadline, a failure, an abort, Ctrl-C); no
        runner outlives the call. ``abort_thresholds`` are judged with ``judge`` on live
        merged data (:attr:`Capability.LIVE_ABORT`); ``on_progress`` is called about once a
        second (:attr:`Capability.LIVE_PROGRESS`); ``health`` is polled as the fleet runs,
        and a reason it returns stops every runner (the run's failure); ``on_start`` is called
        once with the unix time the runners were released (where faults are scheduled from)."""
        ...


class Backend(abc.ABC):
    """A platform that runs the stack and the fleet (local processes, a cluster, ...)."""

    #: What ``--backend`` calls it.
    name: ClassVar[str]
    #: The parts of the contract it honours.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: The run options (settings keys) it is built from: ``port``, ``kubeconfig``, ...
    option_keys: ClassVar[tuple[str, ...]] = ()
    #: The kinds of :mod:`stressbed.fault` it applies during a run (``kill``, ``pause``, ...);
    #: a scenario with another kind is refused before anything is created.
    fault_kinds: ClassVar[frozenset[str]] = frozenset()
    #: Why a kind it does not apply is not applied, where there is more to say than the kinds
    #: it does (said in the refusal).
    fault_refusals: ClassVar[Mapping[str, str]] = {}

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Mapping[str, Any]) -> Backend:
        """The backend built from the run's options (only keys of :attr:`option_keys`);
        ConfigError for a bad value."""

    def preflight(  # noqa: B027 - optional hook
        self, stack: StackSpec | None, scenario: Scenario | None = None
    ) -> None:
        """Check, before anything is created, that this run can work here: ConfigError (exit 2)
        naming what is missing or would be refused. ``stack`` is None when the fleet loads a
        ``--target-url``; ``scenario`` is the run's, as planned."""

    def check_fault(self, fault: Fault) -> None:  # noqa: B027 - optional hook
        """Refuse (ConfigError, exit 2) a fault of a kind it applies whose parameters it cannot
        honour; the plan calls it for each of the scenario's faults before anything exists."""

    @abc.abstractmethod
    def stack(
        self,
        spec: StackSpec,
        work_dir: Path,
        on_event: EventSink | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> Stack:
        """A stack for ``spec``, not yet provisioned; its files go under ``work_dir``.
        ``secrets`` are the values of ``spec.target.secret_env``."""

    def runner_open_files(self) -> int | None:
        """The most files one runner's k6 may hold open (its RLIMIT_NOFILE: k6, a Go
        program, raises its soft limit to the hard one), or None where it is not known before
        the runners start. A population's agents hold a WebSocket each, one file apiece."""
        return None

    @abc.abstractmethod
    def fleet(self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]) -> Fleet:
        """A fleet running ``bundle`` with ``env`` (``TARGET_URL`` and the secrets) in every
        runner; runner *i*'s files go under ``out_dir/runners/<i>/``."""
