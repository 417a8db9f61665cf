"""The local backend: a StackSpec run on this machine with Kubernetes semantics.

Replicas are supervised processes (:mod:`stressbed.replica`) with cgroup limits where the
kernel allows; probes follow :mod:`stressbed.probes`; a load balancer process
(:mod:`stressbed.balancer`) gives the stack one URL and routes new connections to ready
replicas only; the HPA algorithm (:mod:`stressbed.autoscale`) scales on CPU (and memory)
measured per replica against its request; a scale-up that would break the ResourceQuota is
refused and recorded. Everything that happens is an event with a timestamp, and usage is
sampled each second.

One controller thread owns every replica: it starts them (their parent-death signal follows
that thread), probes them through a small pool, restarts them with back-off, scales, and at
teardown stops them all. :meth:`LocalStack.teardown` always leaves nothing running.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._probing import run_probe
from ._proc import free_port
from .autoscale import HpaController
from .balancer import BalancerProcess
from .errors import ConfigError, ProvisionError
from .probes import ReplicaProbes
from .replica import Exit, ReplicaProcess, Usage
from .stack import StackSpec, quota_capped, show_quantity

__all__ = ["LocalOptions", "LocalStack"]

TICK_S = 0.05


@dataclass(frozen=True)
class LocalOptions:
    """How the local backend behaves; the Kubernetes defaults, scaled to a local run."""

    host: str = "127.0.0.1"
    port: int = 0  # the stack's port; 0 takes any free one
    hpa_sync_s: float = 5.0  # Kubernetes: 15 s
    metrics_window_s: float = 5.0  # CPU is averaged over this window (metrics-server: 15 s)
    backoff_base_s: float = 1.0  # CrashLoopBackOff: 10 s doubling...
    backoff_max_s: float = 30.0  # ...up to 300 s
    backoff_reset_s: float = 60.0  # ...reset after 10 min running
    ready_timeout_s: float = 90.0  # every initial replica ready within this
    teardown_grace_s: float = 10.0  # at teardown, SIGKILL after min(this, the grace period)
    cgroups: bool = True  # False: rlimit and advisory CPU, as where cgroups are not writable
    sample_s: float = 1.0


@dataclass
class _Replica:
    name: str
    ordinal: int
    port: int = 0
    process: ReplicaProcess | None = None
    probes: ReplicaProbes | None = None
    state: str = "waiting"  # waiting (back-off) | running | terminating
    restarts: int = 0
    crashes: int = 0  # consecutive, for the back-off
    next_start_at: float = 0.0
    deadline: float = 0.0  # SIGKILL at this time while terminating
    stopping_for: str = ""
    deleting: bool = False
    ready: bool = False
    ready_since: float = 0.0
    in_flight: set[str] = field(default_factory=set)
    last_probe: dict[str, str] = field(default_factory=dict)  # kind -> what it saw last
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, cpu s)
    memory: int = 0


class LocalStack:
    """A provisioned stack: :attr:`url` routes to ready replicas until :meth:`teardown`."""

    def __init__(
        self,
        spec: StackSpec,
        work_dir: Path,
        options: LocalOptions | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec.validate()
        self._secrets = dict(secrets or {})
        self.work_dir = work_dir
        self.options = options or LocalOptions()
        self.on_event = on_event
        self.events: list[dict[str, Any]] = []
        self.series: list[dict[str, Any]] = []
        self.replicas: list[_Replica] = []
        self.enforcement = ""
        self.url = ""
        self._ordinal = 0
        self._balancer: BalancerProcess | None = None
        self._results: queue.Queue[tuple[_Replica, ReplicaProcess, str, bool, str]] = queue.Queue()
        self._pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="probe")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._hpa = HpaController(self.spec.autoscaler) if self.spec.autoscaler else None
        self._next_sync = 0.0
        self._next_sample = 0.0
        self._desired = self.spec.initial_replicas

    # -- provisioning and teardown ----------------------------------------------------

    def provision(self) -> str:
        """Start the balancer and the replicas; return the URL once every one is ready."""
        _check_executable(self.spec.target.command)
        self._balancer = BalancerProcess(self.options.host, self.options.port)
        self.url = self._balancer.url
        self._event("stack-created", url=self.url, replicas=self._desired)
        self._thread = threading.Thread(target=self._control, name="stressbed-stack", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.options.ready_timeout_s
        while True:
            if self._failure is not None:
                raise ProvisionError(f"the stack's controller failed: {self._failure}")
            ready = sum(r.ready for r in self.replicas)
            if ready >= self._desired:
                break
            if time.monotonic() > deadline:
                raise ProvisionError(self._not_ready_reason())
            time.sleep(TICK_S)
        self._event("stack-ready", url=self.url, ready=ready)
        return self.url

    def teardown(self) -> None:
        """Stop every replica (SIGTERM, grace, SIGKILL) and the balancer; idempotent."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=self.options.teardown_grace_s + 10)
        if self._thread is None or not self._thread.is_alive():
            # Never started, or it stopped everything itself; what is left is killed here.
            for replica in self.replicas:
                if replica.process is not None:
                    replica.process.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._balancer is not None:
            self._balancer.close()
            self._balancer = None
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise ProvisionError(f"the local stack's controller failed: {failure}")

    def report(self) -> dict[str, Any]:
        """What summary.json says about the stack."""
        return {
            "backend": "local",
            "url": self.url,
            "enforcement": self.enforcement,
            "security": "not enforced locally (user, read-only root): the kubernetes backend "
            "enforces it",
            "replicas": {
                "desired": self._desired,
                "restarts": {r.name: r.restarts for r in self.replicas},
            },
            "timeseries": self.series,
        }

    # -- the controller thread --------------------------------------------------------

    def _control(self) -> None:
        try:
            for _ in range(self._desired):
                self._create(time.monotonic(), reason="initial")
            while not self._stop.is_set():
                now = time.monotonic()
                if self._balancer is not None and self._balancer.proc.poll() is not None:
                    raise RuntimeError(
                        f"the load balancer exited (code {self._balancer.proc.returncode})"
                    )
                self._take_probe_results(now)
                for replica in list(self.replicas):
                    self._supervise(replica, now)
                if now >= self._next_sample:
                    self._next_sample = now + self.options.sample_s
                    self._sample(now)
                if self._hpa is not None and now >= self._next_sync:
                    self._next_sync = now + self.options.hpa_sync_s
                    self._autoscale(now)
                self._stop.wait(TICK_S)
        except Exception as exc:  # a bug in the controller: stop, and say so at teardown
            self._failure = exc
            self._event("controller-failed", reason=f"{type(exc).__name__}: {exc}")
        finally:
            self._stop_everything()

    def _create(self, now: float, reason: str) -> bool:
        denied = self._quota_denial()
        if denied is not None:
            self._event("quota-denied", reason=denied, wanted=self._desired)
            return False
        replica = _Replica(f"{self.spec.target.name}-{self._ordinal}", self._ordinal)
        self._ordinal += 1
        self.replicas.append(replica)
        self._start(replica, now, first=True, reason=reason)
        return True

    def _start(self, replica: _Replica, now: float, *, first: bool, reason: str = "") -> None:
        spec = self.spec
        replica.port = free_port(self.options.host)
        command = [
            part.replace("{port}", str(replica.port)).replace("{host}", self.options.host)
            for part in (*spec.target.command, *spec.target.args)
        ]
        env = {
            **os.environ,
            **dict(spec.target.env),
            **self._secrets,
            "PORT": str(replica.port),
            "HOST": self.options.host,
        }
        process = ReplicaProcess(
            replica.name,
            command,
            env,
            self.work_dir / "replicas" / f"{replica.name}.log",
            cpu_limit_m=spec.limits.cpu_m,
            memory_limit=spec.limits.memory,
            cgroups=self.options.cgroups,
        )
        if not self.enforcement:
            self.enforcement = process.enforcement
            self._event("limits", enforcement=self.enforcement, cgroups=process.group is not None)
        replica.process = process
        try:
            pid = process.start()
        except OSError as exc:
            # As the kubelet does with a container that cannot start: a failure, then back-off.
            process.close()
            self._event("start-failed", replica=replica.name, reason=str(exc))
            failed = Exit(127, None, False)
            self._event("crashed", replica=replica.name, reason=failed.reason, exit_code=127)
            self._restart_later(replica, now, ran_s=0.0)
            return
        replica.state = "running"
        replica.samples = []
        replica.probes = ReplicaProbes(spec, now)
        replica.in_flight = set()
        if self._balancer is not None:
            self._balancer.add(replica.name, self.options.host, replica.port)
        kind = "created" if first else "restarted"
        extra: dict[str, Any] = {"reason": reason} if first else {"restarts": replica.restarts}
        self._event(kind, replica=replica.name, pid=pid, port=replica.port, **extra)
        for event in replica.probes.initial_events():
            self._apply(replica, event, now, "")

    def _supervise(self, replica: _Replica, now: float) -> None:
        if replica.state == "waiting":
            if now >= replica.next_start_at:
                replica.restarts += 1
                self._start(replica, now, first=False)
            return
        process = replica.process
        assert process is not None
        ended = process.poll()
        if ended is not None:
            self._ended(replica, ended, now)
            return
        if replica.state == "terminating":
            if now >= replica.deadline:
                self._event(
                    "killed",
                    replica=replica.name,
                    reason=f"{replica.stopping_for}: still running after the grace period",
                )
                process.kill()
            return
        assert replica.probes is not None
        for kind in replica.probes.due(now):
            if kind in replica.in_flight:
                continue
            replica.in_flight.add(kind)
            self._pool.submit(self._probe, replica, process, kind, replica.port)

    def _probe(self, replica: _Replica, process: ReplicaProcess, kind: str, port: int) -> None:
        probe = getattr(self.spec, f"{kind}_probe")
        try:
            ok, seen = run_probe(probe, self.options.host, port, process.env)
        except Exception as exc:  # whatever happened, the probe failed and is run again
            ok, seen = False, f"{type(exc).__name__}: {exc}"
        self._results.put((replica, process, kind, ok, seen))

    def _take_probe_results(self, now: float) -> None:
        while True:
            try:
                replica, process, kind, ok, seen = self._results.get_nowait()
            except queue.Empty:
                return
            if process is not replica.process:
                continue  # about a process that is gone; its successor has its own probes
            replica.in_flight.discard(kind)
            replica.last_probe[kind] = seen
            if replica.state != "running":
                continue  # terminating: probes no longer count
            assert replica.probes is not None
            for event in replica.probes.record(kind, ok, now):
                self._apply(replica, event, now, seen)

    def _apply(self, replica: _Replica, event: str, now: float, seen: str) -> None:
        """Act on what the probes say, as the kubelet and the endpoints controller do."""
        detail = {"probe": seen} if seen else {}
        if event == "ready":
            replica.ready = True
            replica.ready_since = now
            if self._balancer is not None and not replica.deleting:
                self._balancer.set_ready(replica.name, True)
        elif event == "unready":
            self._unroute(replica)
        self._event(event, replica=replica.name, **detail)
        if event in ("liveness-failed", "startup-failed"):
            self._terminate(replica, event, now)

    def _unroute(self, replica: _Replica) -> None:
        replica.ready = False
        if self._balancer is not None:
            self._balancer.set_ready(replica.name, False)

    def _terminate(
        self, replica: _Replica, why: str, now: float, grace: float | None = None
    ) -> None:
        """SIGTERM now, SIGKILL when the grace period is over."""
        if replica.state != "running" or replica.process is None:
            return
        self._unroute(replica)
        replica.state = "terminating"
        replica.stopping_for = why
        period = self.spec.termination_grace_period_s if grace is None else grace
        replica.deadline = now + period
        replica.process.signal(signal.SIGTERM)
        self._event("terminating", replica=replica.name, reason=why, grace_s=period)

    def _ended(self, replica: _Replica, ended: Exit, now: float) -> None:
        process = replica.process
        assert process is not None
        self._unroute(replica)
        ran = now - process.started_at
        fields: dict[str, Any] = {"replica": replica.name, "reason": ended.reason}
        if ended.code is not None:
            fields["exit_code"] = ended.code
        if ended.oom_killed:
            self._event("oom-killed", **fields)
        elif replica.state == "terminating":
            self._event("stopped", **fields, after=replica.stopping_for)
        else:
            self._event("crashed", **fields)
        process.close()
        if replica.deleting:
            self._delete(replica)
        else:
            self._restart_later(replica, now, ran_s=ran)

    def _restart_later(self, replica: _Replica, now: float, ran_s: float) -> None:
        """restartPolicy Always, with CrashLoopBackOff's doubling delay (reset after a good run)."""
        replica.crashes = 1 if ran_s >= self.options.backoff_reset_s else replica.crashes + 1
        delay = min(
            self.options.backoff_base_s * 2 ** (replica.crashes - 1), self.options.backoff_max_s
        )
        replica.state = "waiting"
        replica.next_start_at = now + delay
        self._event("back-off", replica=replica.name, delay_s=delay)

    # -- metrics and autoscaling ------------------------------------------------------

    def _sample(self, now: float) -> None:
        pods: dict[str, dict[str, float]] = {}
        window = self.options.metrics_window_s
        for replica in self.replicas:
            usage: Usage | None = None
            if replica.state != "waiting" and replica.process is not None:
                usage = replica.process.usage()
            if usage is None:
                continue
            replica.samples.append((now, usage.cpu_seconds))
            replica.samples = [s for s in replica.samples if now - s[0] <= window + 1.5]
            replica.memory = usage.memory
            pods[replica.name] = {
                "cpu_m": round(self._cpu_m(replica, now, 1.0) or 0.0, 1),
                "memory_mib": round(usage.memory / 2**20, 2),
            }
        self.series.append(
            {
                "t": round(time.time(), 3),
                "replicas": sum(not r.deleting for r in self.replicas),
                "ready": sum(r.ready for r in self.replicas),
                "desired": self._desired,
                "pods": pods,
            }
        )

    def _cpu_m(self, replica: _Replica, now: float, window: float) -> float | None:
        """Millicores used over about ``window`` seconds; None without two samples."""
        if len(replica.samples) < 2:
            return None
        first = next((s for s in replica.samples if now - s[0] <= window + 0.5), None)
        last = replica.samples[-1]
        if first is None or last[0] - first[0] <= 0:
            return None
        return (last[1] - first[1]) / (last[0] - first[0]) * 1000.0

    def _autoscale(self, now: float) -> None:
        assert self._hpa is not None
        window = self.options.metrics_window_s
        live = [r for r in self.replicas if not r.deleting]
        cpu: list[float | None] = []
        memory: list[float | None] = []
        for replica in live:
            # As Kubernetes does: a replica not ready, or ready for less than a full metrics
            # window, has no usable CPU sample yet.
            usable = replica.ready and now - replica.ready_since >= window
            cpu_m = self._cpu_m(replica, now, window) if usable else None
            request_cpu, request_memory = self.spec.requests.cpu_m, self.spec.requests.memory
            cpu.append(cpu_m / request_cpu * 100 if cpu_m is not None and request_cpu else None)
            memory.append(
                replica.memory / request_memory * 100
                if usable and request_memory and replica.memory
                else None
            )
        decision = self._hpa.decide(now, len(live), cpu=cpu, memory=memory)
        if decision.replicas == len(live):
            return
        self._event(
            "scaled", **{"from": len(live), "to": decision.replicas}, reason=decision.reason
        )
        self._desired = decision.replicas
        if decision.replicas > len(live):
            for _ in range(decision.replicas - len(live)):
                if not self._create(now, reason="scale-up"):
                    break
        else:
            for replica in self._scale_in_order(live)[: len(live) - decision.replicas]:
                replica.deleting = True
                if self._balancer is not None:
                    self._balancer.remove(replica.name)
                if replica.state == "running":
                    self._terminate(replica, "scale-down", now)
                elif replica.state == "waiting":  # nothing runs: it simply goes
                    self._delete(replica)
                # terminating: it goes when its process has ended (see _ended)

    def _delete(self, replica: _Replica) -> None:
        self.replicas.remove(replica)
        if self._balancer is not None:
            self._balancer.remove(replica.name)
        self._event("deleted", replica=replica.name)

    @staticmethod
    def _scale_in_order(live: list[_Replica]) -> list[_Replica]:
        """Which replicas go first, as the ReplicaSet controller picks: not running or not
        ready before ready, then the most restarted, then the newest."""
        return sorted(live, key=lambda r: (r.state == "running", r.ready, -r.restarts, -r.ordinal))

    def _quota_denial(self) -> str | None:
        """Why one more replica would break the ResourceQuota, or None if it fits."""
        quota = self.spec.quota
        if quota is None:
            return None
        count = len(self.replicas) + 1  # terminating replicas still count, as pods do
        if quota.pods is not None and count > quota.pods:
            return f"exceeded quota: pods, requested 1, used {count - 1}, limited {quota.pods}"
        for what, kind, each, cap in quota_capped(self.spec):
            if each is not None and each * count > cap:
                unit = "cpu" if kind == "cpu_m" else "memory"
                return (
                    f"exceeded quota: {what}.{unit}, requested {show_quantity(kind, each)}, "
                    f"used {show_quantity(kind, each * (count - 1))}, "
                    f"limited {show_quantity(kind, cap)}"
                )
        return None

    # -- stopping ---------------------------------------------------------------------

    def _stop_everything(self) -> None:
        if self._balancer is not None:
            # No new connections; those open end when their replica does.
            for replica in self.replicas:
                self._balancer.set_ready(replica.name, False)
        grace = min(self.spec.termination_grace_period_s, self.options.teardown_grace_s)
        now = time.monotonic()
        for replica in self.replicas:
            replica.deleting = True
            if replica.state == "running":
                self._terminate(replica, "teardown", now, grace=grace)
        deadline = now + grace
        while time.monotonic() < deadline:
            if all(r.process is None or r.process.poll() is not None for r in self.replicas):
                break
            time.sleep(TICK_S)
        for replica in list(self.replicas):
            process = replica.process
            if process is None:
                continue
            ended = process.poll()
            if ended is None:
                self._event("killed", replica=replica.name, reason="teardown: grace period over")
                process.kill()
                ended = process.poll()
            elif replica.state == "terminating":
                self._event("stopped", replica=replica.name, reason=ended.reason, after="teardown")
            process.close()
        self._event("stack-deleted")

    # -- reporting ----------------------------------------------------------------------

    def _not_ready_reason(self) -> str:
        for replica in self.replicas:
            if replica.ready:
                continue
            mine = [e["event"] for e in self.events if e.get("replica") == replica.name]
            started = replica.probes is not None and replica.probes.started
            kind = "readiness" if started else "startup"
            seen = replica.last_probe.get(kind)
            detail = f"; last {kind} probe: {seen}" if seen else ""
            log = self.work_dir / "replicas" / f"{replica.name}.log"
            return (
                f"replica {replica.name} not ready within {self.options.ready_timeout_s:g} s "
                f"(last event: {mine[-1] if mine else 'none'}{detail}; log: {log})"
            )
        return f"replicas not ready within {self.options.ready_timeout_s:g} s"

    def _event(self, kind: str, **fields: Any) -> None:
        event = {"t": round(time.time(), 3), "source": "stack", "event": kind, **fields}
        self.events.append(event)
        if self.on_event is not None:
            with contextlib.suppress(Exception):
                self.on_event(event)


def _check_executable(command: tuple[str, ...]) -> None:
    """A command that cannot start is bad input (exit 2), found before anything starts."""
    if not command:
        raise ConfigError("stack.target.command", command, "a command to run locally")
    program = command[0]
    found = program if os.sep in program else shutil.which(program)
    if found is None or not os.path.exists(found):
        raise ConfigError("stack.target.command[0]", program, "an executable that exists")
    if not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise ConfigError(
            "stack.target.command[0]", program, "an executable file (chmod +x it, or fix the path)"
        )
