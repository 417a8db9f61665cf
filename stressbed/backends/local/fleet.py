"""The local fleet: N runner processes released together, watched, and always stopped.

Stages, each a method: spawn every runner (own process group, stdin detached) -> wait until
each k6 is paused with its VUs initialised -> run setup() once (runner 0) and hand its data to
every runner -> release all runners at once through k6's REST API (the start skew is measured)
-> watch: progress, fleet-wide abortOnFail on live merged data, a runner that fails, the
deadline -> collect every runner's result. Whatever happens, no runner process outlives
:meth:`LocalFleet.run`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ...errors import DocumentError
from ...fleet.environment import runner_environment
from ...fleet.live import LiveMerge
from ...fleet.process import (
    TeardownAbandoned,
    die_with_parent,
    raise_if_interrupted,
    uninterrupted,
)
from ...fleet.release import ReleaseFailed, release_together, setup_once
from ...fleet.segments import segment
from ...results.runner_result import RunnerResult, RunnerStatus
from ...scenario.thresholds import Threshold
from ..base import FleetOutcome, FleetSpec, Health, Judge, Progress, new_event
from ._cgroups import ReplicaCgroup, create

__all__ = ["LocalFleet", "RunnerHandle"]

POLL_S = 0.2
STOP_GRACE_S = 10.0


class RunnerHandle(Protocol):
    """What runs one runner (a process here, a container elsewhere), as the fleet sees it."""

    def lines(self) -> Iterator[bytes]:
        """The runner's stdout, a line at a time, until it exits."""
        ...

    def poll(self) -> int | None:
        """Its exit code once it has exited (negative: killed by that signal), else None."""
        ...

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM): the runner stops its k6 gracefully."""
        ...

    def wait(self, timeout_s: float) -> int | None:
        """Its exit code, waiting up to ``timeout_s``; None if it still runs."""
        ...

    def kill(self) -> None:
        """Kill everything of it (its k6 too), and wait until it is gone."""
        ...


class _ProcessRunner:
    """A runner process: its own process group, shared with its k6."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def lines(self) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        with self.proc.stdout as stream:
            yield from stream

    def poll(self) -> int | None:
        return self.proc.poll()

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        # The runner and its k6 share a process group: nothing of it may outlive the run.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class _Member:
    """One runner as the fleet sees it."""

    def __init__(self, index: int, proc: RunnerHandle, out_dir: Path) -> None:
        self.index = index
        self.proc = proc
        self.out_dir = out_dir
        self.api: str | None = None
        self.done: dict[str, Any] | None = None
        self.reader: threading.Thread | None = None


def _entering(group: ReplicaCgroup, then: Callable[[], None]) -> Callable[[], None]:
    def before_exec() -> None:
        then()
        group.enter()

    return before_exec


def runner_cgroup(name: str, cpu_m: int) -> ReplicaCgroup | None:
    """A cgroup holding one runner (its k6 too) to ``cpu_m`` millicores; None where cgroups
    are not writable."""
    return create(f"runner-{name}", cpu_m, None)


class LocalFleet:
    def __init__(
        self,
        bundle: Path,
        out_dir: Path,
        spec: FleetSpec,
        env: Mapping[str, str],
        *,
        runner_cpu_m: int | None = None,
    ) -> None:
        """``runner_cpu_m``: each runner's CPU quota (a cgroup of its own), as a Kubernetes
        runner pod's limit; its k6 reports that as the CPU it may use."""
        self.bundle = bundle
        self.runner_cpu_m = runner_cpu_m
        self._groups: list[ReplicaCgroup] = []
        self.out_dir = out_dir
        self.spec = spec
        self.env = dict(env)
        self.members: list[_Member] = []
        self._messages: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
        self._events: list[dict[str, Any]] = []
        self._health: Health | None = None
        self._live = LiveMerge(spec.runners, spec.live)

    # -- the stages ------------------------------------------------------------------

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
        self._health = health
        outcome = FleetOutcome(results=[])
        try:
            self._spawn()
            raise_if_interrupted()  # one whose KeyboardInterrupt a child's fork hooks lost
            failure = self._wait_ready()
            if failure is None:
                failure = self._setup()
            if failure is None:
                outcome.started_at, outcome.start_skew_ms = self._release()
                self._event("started", skew_ms=round(outcome.start_skew_ms, 3))
                if on_start is not None:
                    on_start(outcome.started_at)
                self._watch(outcome, deadline_s, abort_thresholds, judge, on_progress)
            else:
                outcome.failure = failure
        except ReleaseFailed as exc:
            outcome.failure = str(exc)
        except KeyboardInterrupt:
            outcome.interrupted = True
            self._event("interrupted")
        finally:
            self._stop_all()
        outcome.results = [self._result(m, outcome) for m in self.members]
        outcome.events = list(self._events)
        return outcome

    def _spawn(self) -> None:
        for i in range(self.spec.runners):
            out = self.out_dir / "runners" / str(i)
            out.mkdir(parents=True, exist_ok=True)
            member = _Member(i, self._launch(i, out), out)
            self.members.append(member)
            member.reader = threading.Thread(target=self._read, args=(member,), daemon=True)
            member.reader.start()
        self._event("spawned", runners=self.spec.runners)

    def runner_args(self, index: int, bundle: str, out: str) -> list[str]:
        """``python -m stressbed.runner``'s arguments for runner ``index``."""
        args = [
            "--bundle",
            bundle,
            "--index",
            str(index),
            "--count",
            str(self.spec.runners),
            "--out",
            out,
            "--ready-timeout",
            str(self.spec.ready_timeout_s),
        ]
        return [*args, "--keep-raw"] if self.spec.keep_raw else args

    def _launch(self, index: int, out: Path) -> RunnerHandle:
        """Start runner ``index`` writing to ``out``: here a process on this machine (in a CPU
        cgroup of its own with ``runner_cpu_m``); another backend's fleet runs its own."""
        # Not the whole of stressbed's environment: what the scenario reads and what the
        # runner needs (k6 hands its environment to the script as __ENV).
        env = runner_environment(os.environ, self.bundle, self.env)
        command = [sys.executable, "-m", "stressbed.runner"]
        command += self.runner_args(index, str(self.bundle), str(out))
        before_exec = die_with_parent()
        if self.runner_cpu_m is not None:
            group = runner_cgroup(str(index), self.runner_cpu_m)
            if group is None:
                raise ReleaseFailed(f"runner {index}: its CPU cgroup could not be made")
            self._groups.append(group)
            before_exec = _entering(group, before_exec)
        with (out / "runner.log").open("wb") as log:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                start_new_session=True,
                preexec_fn=before_exec,  # noqa: PLW1509 - prctl, a cgroup write
            )
        return _ProcessRunner(proc)

    def _read(self, member: _Member) -> None:
        with contextlib.suppress(Exception):  # a stream that breaks: the runner is gone
            for line in member.proc.lines():
                with contextlib.suppress(ValueError):
                    self._messages.put((member.index, json.loads(line)))
        self._messages.put((member.index, None))  # the runner's stdout closed: it exited

    def _wait_ready(self) -> str | None:
        deadline = time.monotonic() + self.spec.ready_timeout_s + 5
        waiting = {m.index for m in self.members}
        while waiting:
            raise_if_interrupted()
            if time.monotonic() > deadline:
                limit = self.spec.ready_timeout_s
                return f"runner {min(waiting)}: k6 was not ready within {limit:g} s"
            try:
                index, event = self._messages.get(timeout=POLL_S)
            except queue.Empty:
                continue
            member = self.members[index]
            if event is None or event.get("event") == "done":
                if event is not None:
                    member.done = event
                return f"runner {index}: exited before it was ready ({self._why(member)})"
            if event.get("event") == "ready":
                member.api = str(event["api"])
                waiting.discard(index)
        self._event("ready", runners=len(self.members))
        return None

    def _setup(self) -> str | None:
        apis = [m.api for m in self.members if m.api is not None]
        failure = setup_once(apis, self.spec.setup_timeout_s)
        if failure is None:
            self._event("setup", runner=0)
        return failure

    def _release(self) -> tuple[float, float]:
        """Resume every k6 at once; the skew is the spread of the moments k6 acknowledged."""
        return release_together([m.api for m in self.members if m.api is not None])

    def _watch(
        self,
        outcome: FleetOutcome,
        deadline_s: float,
        abort_thresholds: Sequence[Threshold],
        judge: Judge | None,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        started = time.monotonic()
        deadline = started + deadline_s
        last_tick = 0.0
        while any(m.done is None and m.proc.poll() is None for m in self.members):
            raise_if_interrupted()
            now = time.monotonic()
            if now > deadline:
                outcome.timed_out = True
                self._event("deadline", seconds=round(deadline_s, 1))
                return
            why = self._health() if self._health is not None else None
            if why is not None:  # no point loading a URL that no longer answers
                outcome.failure = f"the stack failed during the run: {why}"
                self._event("stack-failed", reason=why)
                return
            try:
                index, event = self._messages.get(timeout=POLL_S)
            except queue.Empty:
                index, event = -1, None
            if index >= 0:
                failure = self._handle(self.members[index], event)
                if failure is not None:
                    outcome.failure = failure
                    self._event("runner-failed", runner=index, reason=failure)
                    return
            if now - last_tick >= 1.0:
                last_tick = now
                elapsed = now - started
                if on_progress is not None:
                    on_progress(self._live.progress(elapsed, deadline_s))
                if judge is not None:
                    breached = self._live.breached(abort_thresholds, judge, elapsed)
                    if breached is not None:
                        outcome.aborted_by = breached
                        self._event(
                            "aborted", threshold=breached.key, expression=breached.expression
                        )
                        return
        # Every runner has exited: wait until their last lines are read, then take them in.
        for member in self.members:
            if member.reader is not None:
                member.reader.join(timeout=5)
        while True:
            try:
                index, event = self._messages.get_nowait()
            except queue.Empty:
                break
            if index >= 0:
                failure = self._handle(self.members[index], event)
                if failure is not None and outcome.failure is None:
                    outcome.failure = failure

    def _handle(self, member: _Member, event: dict[str, Any] | None) -> str | None:
        """Fold one event in; a failure message if it says the runner failed."""
        if event is None:
            if member.done is None:
                member.proc.wait(STOP_GRACE_S)
                return f"runner {member.index}: {self._why(member)}"
            return None
        kind = event.get("event")
        if kind == "progress":
            self._live.feed(member.index, event)
        elif kind == "done":
            member.done = event
            if self._live.series is not None:
                # Its last seconds (a snapshot brings a second 3 s after it closed) are in its
                # result only: taken in before the fleet's seconds are sealed without them.
                with contextlib.suppress(OSError, DocumentError):
                    final = RunnerResult.read(member.out_dir / "result.json")
                    self._live.feed_windows(member.index, final.windows)
            self._live.finish(member.index)
            if RunnerStatus(event["status"]).failed:
                return f"runner {member.index}: {event.get('reason') or event['status']}"
        return None

    # -- stopping and collecting ----------------------------------------------------

    def _stop_all(self) -> None:
        with uninterrupted():
            self._stop_members()

    def _stop_members(self) -> None:
        alive = [m for m in self.members if m.proc.poll() is None]
        for member in alive:
            member.proc.terminate()  # the runner stops its k6 gracefully
        deadline = time.monotonic() + STOP_GRACE_S + 2
        try:
            for member in alive:
                member.proc.wait(max(0.1, deadline - time.monotonic()))
        except TeardownAbandoned:
            self._event("stop-abandoned", reason="Ctrl-C twice: runners killed, not stopped")
        self._kill_members()

    def _kill_members(self) -> None:
        for member in self.members:
            member.proc.kill()
            if member.reader is not None:
                member.reader.join(timeout=5)
        for group in self._groups:
            group.remove()
        self._groups.clear()

    def _result(self, member: _Member, outcome: FleetOutcome) -> RunnerResult:
        path = member.out_dir / "result.json"
        result: RunnerResult | None = None
        why = ""
        if path.exists():
            try:
                result = RunnerResult.read(path)
            except DocumentError as exc:
                why = f"its result cannot be read: {exc}"
        if result is None:
            code = member.proc.poll() or 0
            result = RunnerResult.missing(
                member.index,
                self.spec.runners,
                segment(member.index, self.spec.runners),
                RunnerStatus.KILLED if code < 0 else RunnerStatus.ERROR,
                why or self._why(member),
                exit_code=code,
                started_at=outcome.started_at,
            )
        if outcome.timed_out and not result.status.failed:
            result.status = RunnerStatus.TIMEOUT
            result.reason = "stopped at the fleet's deadline"
        return result

    def _why(self, member: _Member) -> str:
        if member.done is not None and member.done.get("reason"):
            return str(member.done["reason"])
        code = member.proc.poll()
        if code is not None and code < 0:
            return f"the runner process was killed by signal {-code}"
        log = member.out_dir / "runner.log"
        last = ""
        if log.exists():
            lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
            last = lines[-1][:300] if lines else ""
        return f"the runner process exited with code {code}" + (f": {last}" if last else "")

    def _event(self, kind: str, **fields: Any) -> None:
        self._events.append(new_event("fleet", kind, **fields))
