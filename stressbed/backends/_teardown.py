"""Teardown as a list of steps, the same for every backend's stack.

A stack's teardown is a list of :class:`Step` run in order by :func:`run_steps`: each step in
a worker thread, waited for at most its own time, so that a step that raises or hangs (faults
that will not undo, a scraper that will not stop) costs that step only and the next one runs.
The step that removes the stack itself (the destroy, the balancer and the replicas' cgroups,
the containers) comes last and always runs. Each failure is said twice: an event
(``teardown-step-failed``, with the step and why) and one message in the
:class:`~stressbed.errors.TeardownError` the stack raises once every step was tried.

The main thread only waits (short waits: a Ctrl-C is raised there). A second Ctrl-C, which
abandons the teardown (:class:`~stressbed.fleet.process.TeardownAbandoned`), first calls the
waited-for step's ``on_abandon`` (stop what it started: a ``pulumi destroy`` is interrupted,
not left running), then propagates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import StressbedError, TeardownError
from ..fleet.process import TeardownAbandoned

__all__ = ["STEP_TIMEOUT_S", "Step", "TeardownError", "run_steps"]

#: How long a step may take unless it says otherwise.
STEP_TIMEOUT_S = 30.0
#: How often the main thread wakes while it waits (a signal is handled there).
_POLL_S = 0.1


@dataclass(frozen=True)
class Step:
    """One thing a teardown does: ``name`` says it in a failure ("undo the faults")."""

    name: str
    run: Callable[[], None]
    timeout_s: float | None = None  # None: STEP_TIMEOUT_S
    #: Called when the teardown is abandoned while this step runs (stop what it started).
    on_abandon: Callable[[], None] | None = None


#: ``event(kind, **fields)``: the stack's own event recorder.
Recorder = Callable[..., None]


def run_steps(steps: Sequence[Step], event: Recorder | None = None) -> list[str]:
    """Run ``steps`` in order, each bounded by its ``timeout_s``; one message per step that
    raised or did not finish in time (each also an event), in order. Never raises but
    :class:`TeardownAbandoned` (or a KeyboardInterrupt), after the step's ``on_abandon``."""
    failures: list[str] = []
    for step in steps:
        problem = _run_one(step)
        if problem is None:
            continue
        failures.append(problem)
        if event is not None:
            event("teardown-step-failed", step=step.name, reason=problem)
    return failures


def _run_one(step: Step) -> str | None:
    finished = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            step.run()
        except BaseException as exc:  # handed to the waiting thread
            failed.append(exc)
        finally:
            finished.set()

    # A daemon thread: one that hangs past its time must not keep stressbed from exiting.
    threading.Thread(target=run, name=f"teardown: {step.name}", daemon=True).start()
    timeout = STEP_TIMEOUT_S if step.timeout_s is None else step.timeout_s
    deadline = time.monotonic() + timeout
    try:
        # Short waits, not one long one: a Ctrl-C is raised here, in the main thread.
        while not finished.wait(_POLL_S):
            if time.monotonic() >= deadline:
                return f"{step.name}: did not finish within {timeout:g} s"
    except KeyboardInterrupt:  # TeardownAbandoned; a bare Ctrl-C where nothing guards
        if step.on_abandon is not None:
            step.on_abandon()
        raise
    if not failed:
        return None
    exc = failed[0]
    if isinstance(exc, TeardownAbandoned):
        raise exc
    if isinstance(exc, StressbedError):
        return str(exc)  # written for the user already
    return f"{step.name}: {type(exc).__name__}: {exc}"
