"""The local backend's faults, applied from the stack's controller thread at their instants:

- ``kill``: SIGKILL of the replica's process group and cgroup; its restart policy then acts
  (the stack sees it end, says ``crashed`` and restarts it after its back-off);
- ``pause``: the replica's cgroup frozen by the kernel's freezer (SIGSTOP to its process
  group where there is no freezer), thawed (SIGCONT) at the fault's end: the kernel still
  accepts its connections, nothing answers (its probes fail, the balancer routes around it, a
  liveness probe may restart it). A replica restarted meanwhile has nothing to resume;
- ``latency``, ``loss``: a toxic in the balancer (:class:`~.balancer.Toxic`) on the path to
  every replica, or to the ones chosen, on open connections too; removed at the fault's end;
- ``reset``: every connection open through the balancer (to the chosen replicas) reset;
- ``cpu``, ``memory``, ``io``: a hog (:mod:`._hog`, :mod:`._inside`) started inside the
  replica's cgroup, so its CPU quota, memory limit and IO limits bound the hog and the
  replica together (the hog may be what its OOM killer picks); the IO hog's file is in the
  data folder, on the replica's disk. Killed (its file removed) at the fault's end. Without
  a cgroup there is nothing to hold a hog to the replica's limits: the fault is skipped,
  saying so;
- ``slow_disk``: the replica's cgroup's reads and writes on the data folder's disk throttled
  to the fault's rate (:mod:`._inside`), its own limits put back at the fault's end (a
  replica restarted meanwhile starts with its own); skipped where the folder is on no block
  device (a tmpfs) or the cgroup has no IO controller;
- ``restart``, ``rolling_restart``: replicas stopped on purpose (SIGTERM, SIGKILL after the
  grace) and started again at once, all together or a few at a time (:mod:`._rollout`);
- ``neighbour``: CPU burners (every core by default), memory held and an IO writer started
  by the runtime beside the replicas (:mod:`._neighbour`: a sibling cgroup with no limit, a
  plain process where no cgroup can be made; the Docker runtime's: a container), never in
  theirs: what the replicas' limits and requests keep off them is the isolation the run's
  verdict judges; stopped at the fault's end;
- ``disk_fill``: the stack's data folder (``{data}``, every replica's writable path: they
  share it) filled by a file, ``.stressbed-fill-<fault>``, to a share of its filesystem or
  until full (:mod:`._datafs`), removed at the fault's end; only where the folder is a tmpfs
  of the stack's own, never this machine's disk (else skipped, saying so);
- ``dependency``: the target's own fault hook (the StackSpec's ``fault_hook``: the reference
  agent's ``/admin/faults``, its ``sink_failure``) started on every replica, and on each
  replica started while it lasts; ended through the hook at the fault's end. The hook's token
  is the run's own, known to the replicas and to this object only.

Each fault's instants come from the fleet's release (``arm``), on the clock of the load's
windows; what was applied is said as ``fault-applied`` / ``fault-ended`` events with the
replicas hit and how, and what could not be as ``fault-skipped``. Whatever is still applied at
teardown is undone first (``undo_all``).
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...scenario.faults import Fault
from ...stack.lifecycle import Lifecycle
from . import _datafs
from ._cgroups import device_of
from ._hog import burners
from ._hook import Hook
from ._inside import Slowed, hogs_in, slow
from ._neighbour import Neighbour
from ._rollout import Restart, Rollout, restart_at_once
from .runtime import ReplicaRun, ReplicaRuntime

__all__ = ["FAULT_KINDS", "Hook", "LocalFaults"]

#: What the local backend applies.
FAULT_KINDS = frozenset(
    {"kill", "pause", "latency", "loss", "reset", "bandwidth", "slow_close"}
    | {"cpu", "memory", "dependency", "restart", "rolling_restart", "disk_fill", "neighbour"}
    | {"io", "slow_disk"}
)
#: A hooked fault is started for this much longer than it lasts: if stressbed dies, the
#: target ends it by itself soon after.
HOOK_MARGIN_S = 30
_HOW = {
    "kill": "SIGKILL of the process group",
    "pause": "SIGSTOP of the process group",
    "freeze": "the cgroup freezer",
    "latency": "a latency toxic in the balancer",
    "loss": "a loss toxic in the balancer (a lost segment held one retransmission timeout)",
    "reset": "the balancer's open connections reset",
    "bandwidth": "a bandwidth toxic in the balancer (per connection, to the client)",
    "slow_close": "a slow_close toxic in the balancer",
    "cpu": "a CPU hog in the replica's cgroup",
    "memory": "a memory hog in the replica's cgroup",
    "io": "an IO hog in the replica's cgroup: direct writes and reads of its data folder",
    "dependency": "the target's fault hook",
    "restart": "SIGTERM of the process group, SIGKILL after the grace period, started again "
    "at once",
}
_HOGS = ("cpu", "memory", "io")
_PATH = ("latency", "loss", "reset", "bandwidth", "slow_close")


class _Path(Protocol):
    """The balancer, as the faults on the path use it."""

    def add_toxic(
        self, name: str, kind: str, upstreams: Sequence[str] | None, **params: float
    ) -> None: ...

    def remove_toxic(self, name: str) -> None: ...

    def reset(self, upstreams: Sequence[str] | None = None) -> None: ...


class _Replica(Protocol):
    @property
    def name(self) -> str: ...

    process: ReplicaRun | None
    port: int
    host: str
    life: Lifecycle


@dataclass
class _Armed:
    fault: Fault
    at: float  # unix time
    end: float
    applied: bool = False
    ended: bool = False
    #: What was hit: (replica name, the process then running it).
    hit: list[tuple[str, ReplicaRun]] = field(default_factory=list)
    on_path: bool = False  # a toxic in the balancer
    scope: list[str] | None = None  # the replicas a toxic is on (None: every one)
    hogs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    frozen: bool = False  # a pause by the cgroup freezer, not SIGSTOP
    hooked: str = ""  # the hook's kind a dependency fault started
    fill: Path | None = None  # the file a disk_fill wrote
    neighbour: Neighbour | None = None  # beside the replicas, not in them; stopped at its end
    slowed: list[Slowed] = field(default_factory=list)  # a slow_disk's throttles
    files: list[Path] = field(default_factory=list)  # what its hogs wrote, removed at its end
    #: id(process) -> its (host, port), for the hook
    ports: dict[int, tuple[str, int]] = field(default_factory=dict)
    rollout: Rollout | None = None  # a rolling restart under way


class LocalFaults:
    """The scheduled faults of one run against one local stack."""

    def __init__(
        self,
        event: Callable[..., None],
        path: Callable[[], _Path | None],
        cpu_limit_m: int | None = None,
        *,
        hook: Hook | None = None,
        restart: Restart | None = None,
        ready_within_s: float = 120.0,
        runtime: ReplicaRuntime | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self._event = event
        self._path = path  # the balancer, once there is one
        self._hook = hook
        self._restart = restart  # the stack's: a replica stopped on purpose
        self._ready_within_s = ready_within_s  # a rolling restart's replacement, at most
        self._cpu_limit_m = cpu_limit_m  # a replica's: what a cpu fault's share is of
        self._runtime = runtime  # what runs the replicas (their data folder, a neighbour)
        self._work_dir = work_dir  # the stack's: the replicas' data folder under "data"
        self._folder = work_dir / "data" if work_dir is not None else None
        self._armed: list[_Armed] = []
        self._lock = threading.Lock()

    def arm(self, faults: Sequence[Fault], started_at: float) -> None:
        """Schedule ``faults`` from ``started_at`` (unix time: when the load was released)."""
        with self._lock:
            for item in faults:
                at = started_at + item.at_ms / 1000
                self._armed.append(_Armed(item, at, at + item.lasting_ms / 1000))

    def tick(self, replicas: Sequence[_Replica]) -> None:
        """Apply what is due and end what is over (the controller thread, every tick)."""
        now = time.time()
        with self._lock:
            armed = list(self._armed)
        for item in armed:
            if not item.applied and now >= item.at:
                item.applied = True
                self._apply(item, replicas)
            if item.applied and not item.ended and item.fault.lasting_ms and now >= item.end:
                self._end(item, "its end")
            elif item.hooked and not item.ended:
                self._hook_new_replicas(item, replicas)
            elif item.rollout is not None and not item.ended:
                self._roll(item, replicas)

    def undo_all(self) -> None:
        """End every fault still applied (teardown: before the replicas are stopped)."""
        with self._lock:
            armed = list(self._armed)
        for item in armed:
            if item.applied and not item.ended and item.rollout is not None:
                self._end_rollout(item, "teardown")
            elif item.applied and not item.ended and item.fault.lasting_ms:
                self._end(item, "teardown")

    def _apply(self, item: _Armed, replicas: Sequence[_Replica]) -> None:
        fault = item.fault
        running = sorted(
            (r for r in replicas if r.process is not None and r.process.poll() is None),
            key=lambda r: r.name,
        )
        if fault.kind in _PATH:
            self._apply_on_path(item, running)
            return
        if fault.kind == "dependency":
            self._apply_hook(item, running)
            return
        if fault.kind in ("restart", "rolling_restart"):
            self._apply_restart(item, replicas)
            return
        if fault.kind == "disk_fill":
            self._apply_fill(item, running)
            return
        if fault.kind == "neighbour":
            self._apply_neighbour(item)
            return
        count = fault.replicas or len(running)
        if len(running) < count:
            self._skip(item, f"{len(running)} replica(s) running, the fault needs {count}")
            return
        chosen = random.Random(fault.seed).sample(running, count)
        if fault.kind in (*_HOGS, "slow_disk") and any(
            r.process is None or r.process.group is None for r in chosen
        ):
            what = "no IO throttle" if fault.kind == "slow_disk" else "a hog would not be held"
            self._skip(item, f"the replicas have no cgroup: {what} to their limits")
            return
        if fault.kind in ("io", "slow_disk") and self._folder is None:
            self._skip(item, "the stack has no data folder: no disk of the replicas' to act on")
            return
        if fault.kind == "slow_disk":
            self._apply_slow(item, chosen)
            return
        for replica in chosen:
            process = replica.process
            assert process is not None
            item.hit.append((replica.name, process))
        # The instant it took effect: taken as the signals go, on the load's clock.
        applied_at = time.time()
        if fault.kind == "pause":
            item.frozen = self._freeze([p for _, p in item.hit])
        for name, process in item.hit:
            if fault.kind == "kill":
                process.kill()
            elif fault.kind in _HOGS:
                item.hogs.extend(self._hogs(item, process, name))
            elif not item.frozen:
                process.signal(signal.SIGSTOP)
        self._say_applied(
            item,
            applied_at,
            replicas=[name for name, _ in item.hit],
            how=self._how("freeze" if item.frozen else fault.kind, item.hit),
        )
        if not fault.lasting_ms:
            item.ended = True

    def _apply_fill(self, item: _Armed, running: Sequence[_Replica]) -> None:
        """Fill the data folder, only where it is the stack's own tmpfs: every replica shares
        it, so every one is hit, whatever ``replicas`` says."""
        fs = self._runtime.data_fs if self._runtime is not None else None
        applied_at = time.time()
        try:
            filled = _datafs.fill(fs, item.fault.name, float(item.fault.param("fill") or 1))
        except OSError as exc:
            self._skip(item, f"the data folder was not filled: {exc}")
            return
        item.fill = filled.path
        item.hit = [(r.name, r.process) for r in running if r.process is not None]
        self._say_applied(
            item,
            applied_at,
            replicas=[name for name, _ in item.hit],
            scope="the data folder every replica shares",
            how=filled.how,
            path=str(filled.path),
            written=filled.written,
            free_after=filled.free_after,
        )

    def _apply_neighbour(self, item: _Armed) -> None:
        """Burn CPU, hold memory and write to the disk beside the replicas, never in their
        cgroups: as their runtime runs a neighbour."""
        if self._runtime is None or self._work_dir is None:
            self._skip(item, "no stack: nothing to run a neighbour beside")
            return
        applied_at = time.time()
        try:
            item.neighbour = self._runtime.neighbour(item.fault, self._work_dir)
        except OSError as exc:
            self._skip(item, f"the neighbour did not start: {exc}")
            return
        self._say_applied(
            item,
            applied_at,
            replicas=[],
            scope="this machine, outside the replicas' cgroups",
            how=item.neighbour.how,
        )

    def _apply_slow(self, item: _Armed, chosen: Sequence[_Replica]) -> None:
        """Throttle the chosen replicas' reads and writes on their data folder's disk."""
        assert self._folder is not None
        bps, device = item.fault.param("bps"), device_of(self._folder)
        if device.major is None or bps is None:  # (a latency only: refused by check_fault)
            self._skip(item, f"nothing to throttle: {device.reason or 'no rate'}")
            return
        item.hit = [(r.name, r.process) for r in chosen if r.process is not None]
        applied_at = time.time()
        item.slowed, problem = slow([p.group for _, p in item.hit if p.group], device, int(bps))
        if problem:
            item.hit = []
            self._skip(item, problem)
            return
        self._say_applied(
            item,
            applied_at,
            replicas=[name for name, _ in item.hit],
            how=f"reads and writes on {device.key} (the data folder's disk) throttled to "
            f"{bps / 2**20:g}MiB/s in the replica's cgroup"
            + ("; its latency is not applied here" if item.fault.param("delay_ms") else ""),
            device=device.key,
        )

    def _apply_restart(self, item: _Armed, replicas: Sequence[_Replica]) -> None:
        if self._restart is None:
            self._skip(item, "the stack cannot restart its replicas")
            return
        if item.fault.kind == "rolling_restart":
            item.rollout = Rollout.of(item.fault, replicas, self._ready_within_s)
            self._roll(item, replicas)
            return
        applied_at = time.time()
        item.hit, problem = restart_at_once(item.fault, replicas, self._restart)
        if not item.hit:
            self._skip(item, problem or "no replica was running to be restarted")
            return
        item.ended = True  # an instant: each replica is started again by the stack
        self._say_applied(
            item,
            applied_at,
            replicas=[name for name, _ in item.hit],
            how=self._how("restart", item.hit),
        )

    def _roll(self, item: _Armed, replicas: Sequence[_Replica]) -> None:
        """A rolling restart's next step: its first stop says it applied; its last
        replacement ready (or one that is not, in time) ends it."""
        rollout = item.rollout
        assert rollout is not None
        assert self._restart is not None
        applied_at = time.time()
        started, over = rollout.tick(replicas, self._restart)
        if started and not rollout.applied:
            rollout.applied = True
            hit = [(n, p) for n, (p, _) in rollout.in_flight.items()]
            self._say_applied(
                item,
                applied_at,
                replicas=list(rollout.order),
                how=f"{self._how('restart', hit)}; {rollout.max_unavailable} at a time, the "
                "next once the last is ready",
                first=started,
            )
        if over == "done":
            self._end_rollout(item, "every replica restarted")
        elif over:
            self._end_rollout(item, f"stopped: {over}")

    def _end_rollout(self, item: _Armed, reason: str) -> None:
        rollout = item.rollout
        assert rollout is not None
        item.ended = True
        if not rollout.applied:  # not one replica stopped: it never happened
            why = {
                "every replica restarted": "no replica was running to restart",
                "teardown": "teardown came before a replica could be restarted",
            }
            self._skip(item, why.get(reason, reason.removeprefix("stopped: ")))
            return
        self._event(
            "fault-ended",
            fault=item.fault.name,
            fault_kind=item.fault.kind,
            replicas=list(rollout.order),
            restarted=list(rollout.restarted),
            not_restarted=[n for n in rollout.order if n not in rollout.restarted],
            how="the rollout done" if reason == "every replica restarted" else "it stopped there",
            reason=reason,
        )

    @staticmethod
    def _how(kind: str, hit: Sequence[tuple[str, ReplicaRun]]) -> str:
        """How a kind of fault is applied: said by what runs the replicas where it has its
        own way (a container's), else this module's."""
        own = hit[0][1].how if hit else {}
        return own.get(kind, _HOW[kind])

    @staticmethod
    def _freeze(processes: Sequence[ReplicaRun]) -> bool:
        """Every one frozen whole (its cgroup's freezer); False (and none left frozen) where
        one cannot be or the kernel did not take it: the caller stops them with SIGSTOP."""
        if not all(p.can_freeze for p in processes):
            return False
        done = [p for p in processes if p.freeze(True)]
        if len(done) == len(processes):
            return True
        for process in done:
            process.freeze(False)
        return False

    def _say_applied(self, item: _Armed, at: float, **fields: Any) -> None:
        """``fault-applied`` at ``at``, with the replicas hit and how (``fields``)."""
        fault = item.fault
        self._event(
            "fault-applied",
            t=at,
            fault=fault.name,
            fault_kind=fault.kind,
            label=fault.label,
            **fields,
        )

    def _skip(self, item: _Armed, reason: str) -> None:
        """Not applied, and said so: the fault will not be undone, nor judged as applied."""
        item.ended = True
        self._event(
            "fault-skipped", fault=item.fault.name, fault_kind=item.fault.kind, reason=reason
        )

    def _hogs(self, item: _Armed, process: ReplicaRun, name: str) -> list[subprocess.Popen[bytes]]:
        """The hogs of one replica, each moved into its cgroup before it runs."""
        fault = item.fault
        assert process.group is not None
        if fault.kind == "cpu":
            work = burners((fault.param("share") or 0.0) * (self._cpu_limit_m or 1000) / 1000)
        elif fault.kind == "io":
            assert self._folder is not None
            item.files.append(self._folder / f".stressbed-{fault.name}-{name}")
            work = [("io", str(item.files[-1]))]
        else:
            work = [("memory", str(int(fault.param("memory") or 0)))]
        return hogs_in(process.group, work)

    def _apply_on_path(self, item: _Armed, running: Sequence[_Replica]) -> None:
        fault = item.fault
        path = self._path()
        if path is None:
            self._skip(item, "no balancer")
            return
        scope: list[str] | None = None  # None: the path to every replica, new ones too
        if fault.replicas is not None:
            if len(running) < fault.replicas:
                self._skip(
                    item, f"{len(running)} replica(s) running, the fault needs {fault.replicas}"
                )
                return
            chosen = random.Random(fault.seed).sample(list(running), fault.replicas)
            scope = sorted(r.name for r in chosen)
        applied_at = time.time()
        if fault.kind == "reset":
            path.reset(scope)
            item.ended = True
        else:
            params = {
                "latency_s": (fault.param("latency_ms") or 0.0) / 1000,
                "jitter_s": (fault.param("jitter_ms") or 0.0) / 1000,
                "loss": fault.param("loss") or 0.0,
                "rate": fault.param("rate") or 0.0,
                "close_s": (fault.param("close_ms") or 0.0) / 1000,
                "seed": float(fault.seed),
            }
            path.add_toxic(fault.name, fault.kind, scope, **params)
        item.scope = scope
        item.on_path = True
        self._say_applied(
            item,
            applied_at,
            replicas=scope if scope is not None else [r.name for r in running],
            scope="chosen replicas" if scope is not None else "every replica",
            how=_HOW[fault.kind],
        )

    def _apply_hook(self, item: _Armed, running: Sequence[_Replica]) -> None:
        fault, hook = item.fault, self._hook
        kind = hook.spec.kind_of(str(fault.param("target"))) if hook is not None else None
        if hook is None or kind is None:
            self._skip(item, "the stack's fault hook does not inject it")
            return
        applied_at = time.time()
        item.hooked = kind
        problems = [p for p in (self._hook_one(item, r) for r in running) if p]
        if not item.hit:
            item.hooked = ""
            self._skip(
                item, "the fault hook refused it: " + (problems[0] if problems else "no replica")
            )
            return
        self._say_applied(
            item,
            applied_at,
            replicas=[name for name, _ in item.hit],
            how=f"{_HOW['dependency']} ({kind})",
        )

    def _hook_one(self, item: _Armed, replica: _Replica) -> str | None:
        """Start the hooked fault on one replica, for the rest of the fault's time."""
        assert self._hook is not None
        process = replica.process
        if process is None:
            return None
        left = max(1.0, item.end - time.time()) + HOOK_MARGIN_S
        body = {"kind": item.hooked, "duration_s": round(left, 1)}
        address = (replica.host, replica.port)
        problem = self._hook.call(address, "POST", self._hook.spec.path, body)
        if problem is None:
            item.hit.append((replica.name, process))
            item.ports[id(process)] = address
        return problem

    def _hook_new_replicas(self, item: _Armed, replicas: Sequence[_Replica]) -> None:
        """A replica started while the downstream is failing finds it failing too, once it
        is ready (one not answering is not asked: its call would hold the controller up)."""
        hit = {id(p) for _, p in item.hit}
        for replica in replicas:
            process = replica.process
            fresh = process is not None and process.poll() is None and id(process) not in hit
            answers = getattr(replica, "ready", True)
            if fresh and answers and self._hook_one(item, replica) is None:
                self._event("fault-extended", fault=item.fault.name, replicas=[replica.name])

    def _end(self, item: _Armed, reason: str) -> None:
        """Undo what ``item`` applied, and say so (``fault-ended``)."""
        item.ended = True
        fields: dict[str, Any] = {"replicas": [name for name, _ in item.hit]}
        if item.fill is not None:
            item.fill.unlink(missing_ok=True)
            fields["how"] = "the fill file removed"
        elif item.hooked and self._hook is not None:
            fields.update(ended=self._unhook(item), how="ended through the fault hook")
        elif item.on_path:
            path = self._path()
            if path is not None:
                path.remove_toxic(item.fault.name)
            fields.update(replicas=item.scope, how="the toxic removed")
        elif item.fault.kind == "slow_disk":
            for slowed in item.slowed:
                slowed.restore()
            fields["how"] = "the replicas' own IO limits put back"
        elif item.fault.kind in (*_HOGS, "neighbour"):
            self._stop_hogs(item)
            fields["how"] = "the neighbour stopped" if item.neighbour else "the hogs killed"
        else:
            fields.update(resumed=self._resume(item), how="thawed" if item.frozen else "SIGCONT")
        fault = item.fault
        self._event("fault-ended", fault=fault.name, fault_kind=fault.kind, **fields, reason=reason)

    def _unhook(self, item: _Armed) -> list[str]:
        """The hooked fault ended on each replica still running: those it ended on."""
        assert self._hook is not None
        path = f"{self._hook.spec.path}/{item.hooked}"
        return [
            name
            for name, process in item.hit
            if process.poll() is None
            and self._hook.call(item.ports[id(process)], "DELETE", path) is None
        ]

    def _stop_hogs(self, item: _Armed) -> None:
        for hog in item.hogs:
            with contextlib.suppress(ProcessLookupError):
                hog.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                hog.wait(timeout=5)
        if item.neighbour is not None:
            item.neighbour.stop()
        for path in item.files:  # the IO hogs'
            path.unlink(missing_ok=True)

    def _resume(self, item: _Armed) -> list[str]:
        """A pause undone: the replicas it froze or stopped thawed or continued; those it
        was (a replica restarted meanwhile has nothing to resume)."""
        resumed: list[str] = []
        for name, process in item.hit:
            if process.poll() is None:
                if item.frozen:
                    process.freeze(False)
                else:
                    process.signal(signal.SIGCONT)
                resumed.append(name)
        return resumed
