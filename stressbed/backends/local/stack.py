"""The local stack: the controller loop that runs a StackSpec on this machine.

The decisions are made by the pure controllers of :mod:`stressbed.stack`: each replica's
:class:`~stressbed.stack.lifecycle.Lifecycle` (restarts with back-off, termination, deletion),
its :class:`~stressbed.stack.probes.ReplicaProbes`, the HPA algorithm and the quota. This
module owns what they cannot: driving the replicas' runs through the
:class:`~.runtime.ReplicaRuntime` it is given (processes by default, :mod:`._replica`, with
cgroup limits where the kernel allows; containers on the Docker backend), the probes' network
calls (a small pool), the load balancer process that gives the stack one URL and routes new
connections to ready replicas only, the usage feed (:mod:`._metrics`), and the events.

One controller thread owns every replica: it starts them (their parent-death signal follows
that thread), probes them, restarts them, scales, and at teardown stops them all.
:meth:`LocalStack.teardown` always leaves nothing running.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

from ...errors import ProvisionError, TeardownError
from ...results.target_metrics import parse_selector
from ...scenario.faults import Fault
from ...stack.hpa import HpaController
from ...stack.lifecycle import BackOff, Deletion, Lifecycle, Phase
from ...stack.probes import ReplicaProbes, ready_within_s
from ...stack.spec import StackSpec, quota_denial
from .._teardown import Step, run_steps
from ..base import new_event
from ..scrape import Scraper
from ._diagnose import crash_looping, not_ready_reason
from ._faults import LocalFaults
from ._files import balancer_reading
from ._hook import Hook
from ._metrics import UsageFeed
from ._options import LocalOptions
from ._probing import ProbePool
from ._replica import ProcessRuntime
from .balancer_pool import BalancerProcess
from .runtime import Exit, Launch, ReplicaRun, ReplicaRuntime, Usage

__all__ = ["LocalOptions", "LocalStack"]

TICK_S = 0.05
#: How much longer than the teardown grace the controller thread gets to stop everything.
CONTROLLER_JOIN_MARGIN_S = 10.0


@dataclass
class _Replica:
    """One replica: its lifecycle (pure) and its current run (the runtime's)."""

    life: Lifecycle
    port: int = 0
    host: str = ""  # where the replica answers (its probes, the balancer, the fault hook)
    process: ReplicaRun | None = None
    probes: ReplicaProbes | None = None
    ever_ready: bool = False
    last_probe: dict[str, str] = field(default_factory=dict)  # kind -> what it saw last

    @property
    def name(self) -> str:
        return self.life.name

    @property
    def restarts(self) -> int:
        return self.life.restarts

    @property
    def ready(self) -> bool:
        """Routed to now: it answers (a fault's hook is called on it then)."""
        return self.life.ready


class LocalStack:
    """A provisioned stack: :attr:`url` routes to ready replicas until :meth:`teardown`; what
    runs them is ``runtime``'s (processes on this machine when None)."""

    def __init__(  # noqa: PLR0917 - the stack's arguments, then what runs its replicas
        self,
        spec: StackSpec,
        work_dir: Path,
        options: LocalOptions | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        secrets: Mapping[str, str] | None = None,
        runtime: ReplicaRuntime | None = None,
    ) -> None:
        self.spec = spec.validate()
        self._secrets = dict(secrets or {})
        self.work_dir = work_dir
        self.options = options or LocalOptions()
        self.runtime = runtime or ProcessRuntime.of(self.options)
        self.on_event = on_event
        self.replicas: list[_Replica] = []
        self.enforcement = ""
        #: How each limit beyond CPU and memory is held, as the first replica said.
        self.isolation: dict[str, str] = {}
        self.url = ""
        self._events: list[dict[str, Any]] = []
        self._backoff = BackOff(
            self.options.backoff_base_s, self.options.backoff_max_s, self.options.backoff_reset_s
        )
        self._feed = UsageFeed(self.spec, self.options.metrics_window_s, work_dir / "data")
        self._ordinal = 0
        self._balancer: BalancerProcess | None = None
        #: How the balancer was sized (summary.json's stack.balancer), kept past its close.
        self._balancer_report: dict[str, Any] | None = None
        self._nofile: dict[str, int] = {}  # each replica's open-file limit, as last started
        self._probes: ProbePool[ReplicaRun] = ProbePool()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._forced = False
        self._last_denial: tuple[str, int] | None = None
        self._hpa = HpaController(self.spec.autoscaler) if self.spec.autoscaler else None
        self._next_sync = 0.0
        self._next_sample = 0.0
        self._desired = self.spec.initial_replicas
        self._scraper = self._make_scraper()
        hook = self.spec.fault_hook
        # The target's fault hook answers a token made for this run only, given to the
        # replicas and to nothing else (never an event, a log line or a file).
        self._hook_token = token_urlsafe(24) if hook is not None else ""
        self._faults = LocalFaults(
            self._event,
            lambda: self._balancer,
            self.spec.limits.cpu_m,
            hook=Hook(hook, self._hook_token) if hook is not None else None,
            restart=lambda r: self._terminate(r, "restart", time.monotonic(), deliberate=True),
            ready_within_s=ready_within_s(self.spec),
            runtime=self.runtime,  # its data folder, its neighbours
            work_dir=self.work_dir,
        )

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    @property
    def series(self) -> list[dict[str, Any]]:
        """Per sample: replicas, ready, desired, each replica's usage (:mod:`._metrics`)."""
        return list(self._feed.series)

    # -- provisioning and teardown ----------------------------------------------------

    def provision(self) -> str:
        """Start the balancer and the replicas; return the URL once every one is ready."""
        self.runtime.prepare(self.spec, self.work_dir, self._event)
        self._balancer = BalancerProcess(
            self.options.host,
            self.options.port,
            also=self.runtime.listen_also,
            connections=self.options.connections,
        )
        self.url = self._balancer.url
        self._event(
            "stack-created",
            url=self.url,
            replicas=self._desired,
            balancer_workers=len(self._balancer.workers),
        )
        self._thread = threading.Thread(target=self._control, name="stressbed-stack", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.options.ready_timeout_s
        while True:
            if self._failure is not None:
                raise ProvisionError(f"the stack's controller failed: {self._failure}")
            ready = sum(r.life.ready for r in self.replicas)
            if ready >= self._desired:
                break
            looping = self._crash_looping()
            if looping is not None:
                raise ProvisionError(looping)
            if time.monotonic() > deadline:
                raise ProvisionError(self._not_ready_reason())
            time.sleep(TICK_S)
        self._balancer.sync()  # every worker routes to them (a dead one: the controller says)
        self._event("stack-ready", url=self.url, ready=ready)
        if self._scraper is not None:
            self._scraper.start()
        return self.url

    def _make_scraper(self) -> Scraper | None:
        metrics = self.spec.metrics
        if metrics is None:
            return None
        path = metrics.path

        def endpoints() -> dict[str, str]:
            # Each replica serves its metrics on its own port (the target's port, locally).
            return {
                r.name: f"http://{_netloc(r.host, r.port)}{path}"
                for r in list(self.replicas)
                if r.life.has_process and not r.life.stopping
            }

        return Scraper(endpoints, [parse_selector(s) for s in metrics.series])

    def teardown(self) -> None:
        """Stop every replica (SIGTERM, grace, SIGKILL) and the balancer, in bounded steps."""
        failures = run_steps(self._stopping_steps(), self._event)
        # Made now, not before: the replicas as the controller left them.
        failures += run_steps(self._removal_steps(), self._event)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            failures.insert(0, f"the local stack's controller failed: {failure}")
        if failures:
            raise TeardownError(failures)

    def _stopping_steps(self) -> list[Step]:
        scraper = [Step("stop the metrics scraper", self._scraper.stop)] if self._scraper else []
        grace = self.options.teardown_grace_s + CONTROLLER_JOIN_MARGIN_S
        return [
            *scraper,
            Step("stop the controller", self._stop_controller, timeout_s=grace + 5),
            Step("undo the faults", self._faults.undo_all),  # the controller may not have
        ]

    def _removal_steps(self) -> list[Step]:
        """Whatever the controller got to (it never started, stopped everything, or hangs): each
        replica killed, its cgroup removed; the balancer; what the runtime holds, last."""
        replicas = list(self.replicas)
        release, release_s = self.runtime.release_step
        return [
            *(Step(f"remove replica {r.name}", r.process.close) for r in replicas if r.process),
            Step("stop the probes", self._probes.close),
            Step("stop the balancer", self._close_balancer),
            Step(release, self.runtime.release, release_s),
        ]

    def _stop_controller(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive() and not self._forced:
            self._thread.join(timeout=self.options.teardown_grace_s + CONTROLLER_JOIN_MARGIN_S)
            if self._thread.is_alive():  # waited once: a second teardown does not wait again
                self._forced = True
                self._event("teardown-forced", reason="the controller did not stop in time")

    def _close_balancer(self) -> None:
        if self._balancer is not None:
            self._balancer_report = self._balancer.report()
            self._balancer.close()
            self._balancer = None

    def schedule_faults(self, faults: Sequence[Fault], started_at: float) -> None:
        self._faults.arm(faults, started_at)

    def leftovers(self) -> str:
        return (
            "replica and balancer processes end with stressbed (a parent-death signal); "
            "their cgroups are removed by the next run"
        )

    def failure(self) -> str | None:
        if self._failure is not None:
            return f"the stack's controller failed: {self._failure}"
        return None

    def report(self) -> dict[str, Any]:
        """What summary.json says about the stack."""
        return {
            "backend": "local",
            "url": self.url,
            "enforcement": self.enforcement,
            "isolation": self.isolation,  # limits beyond CPU and memory: how each is held
            "security": "not enforced locally (user, read-only root): the kubernetes backend "
            "enforces it",
            "replicas": {
                "desired": self._desired,
                "restarts": {r.name: r.restarts for r in self.replicas},
                # Of them, those a restart fault made (a rollout), not a crash or a probe.
                "restarted_on_purpose": {
                    r.name: r.life.restarted_on_purpose for r in self.replicas
                },
                "max": self.spec.autoscaler.max_replicas if self.spec.autoscaler else None,
                # The open-file limit the replicas ran with (the lowest; None: not read).
                "nofile": min(self._nofile.values(), default=None),
            },
            "limits": self.spec.limits.figures(),
            "target_metrics": self._scraper.report() if self._scraper is not None else {},
            "requests": self.spec.requests.figures(),
            "balancer": (
                self._balancer.report() if self._balancer is not None else self._balancer_report
            ),
            "timeseries": self.series,
        }

    # -- the controller thread --------------------------------------------------------

    def _control(self) -> None:
        try:
            for _ in range(self._desired):
                if self._stop.is_set():  # torn down while the replicas were being started
                    break
                self._create(time.monotonic(), reason="initial")
            while not self._stop.is_set():
                now = time.monotonic()
                failed = self._balancer.failure() if self._balancer is not None else None
                if failed is not None:
                    raise RuntimeError(failed)
                self._take_probe_results(now)
                self._faults.tick(self.replicas)
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
        # Terminating replicas still count, as their pods do.
        denied = quota_denial(self.spec, len(self.replicas))
        if denied is not None:
            if (denied, self._desired) != self._last_denial:  # once per change, not per retry
                self._last_denial = (denied, self._desired)
                self._event("quota-denied", reason=denied, wanted=self._desired)
            return False
        self._last_denial = None
        name = f"{self.spec.target.name}-{self._ordinal}"
        replica = _Replica(Lifecycle(name, self._ordinal, self._backoff))
        self._ordinal += 1
        self.replicas.append(replica)
        self._start(replica, now, first=True, reason=reason)
        return True

    def _start(self, replica: _Replica, now: float, *, first: bool, reason: str = "") -> None:
        spec = self.spec
        process = self.runtime.launch(self._launch_of(replica.name))
        replica.port = process.port
        if not self.enforcement:
            self.enforcement = process.enforcement
            self._event("limits", enforcement=self.enforcement, cgroups=process.enforced)
        replica.process = process
        rollout = replica.life.stopping_for if replica.life.deliberate else ""
        # Running from here on (a start that fails is its first crash), not before: what
        # raised above leaves it in back-off, with nothing to signal at teardown.
        replica.life.start(now, first=first)
        try:
            ident = process.start()
            if not self.isolation and process.isolation:  # known once started (a container)
                self.isolation = dict(process.isolation)
                self._event("isolation", **self.isolation)
        except OSError as exc:
            # As the kubelet does with a container that cannot start: a failure, then back-off.
            process.close()
            self._event("start-failed", replica=replica.name, reason=str(exc))
            failed = Exit(127, None, False)
            self._event("crashed", replica=replica.name, reason=failed.reason, exit_code=127)
            self._restart_or_delete(replica, now)
            return
        replica.host = process.host or self.options.host
        if process.nofile is not None:
            self._nofile[replica.name] = process.nofile
        self._feed.restarted(replica.name)
        replica.probes = ReplicaProbes(spec, now)
        if self._balancer is not None:
            self._balancer.add(replica.name, replica.host, replica.port)
        kind = "created" if first else "restarted"
        extra: dict[str, Any] = {"reason": reason} if first else {"restarts": replica.restarts}
        if rollout:
            extra["reason"] = rollout  # started again on purpose, not after a crash
        self._event(kind, replica=replica.name, **ident, port=replica.port, **extra)
        for event in replica.probes.initial_events():
            self._apply(replica, event, now, "")

    def _launch_of(self, name: str) -> Launch:
        """What the runtime is asked for: the secrets and the fault hook's token come from
        here, known to the replicas and to nothing else."""
        spec = self.spec
        hooked = {spec.fault_hook.token_env: self._hook_token} if spec.fault_hook else {}
        return Launch(name, spec, self.work_dir, {**self._secrets, **hooked})

    def _supervise(self, replica: _Replica, now: float) -> None:
        life = replica.life
        if life.phase is Phase.BACK_OFF:
            if life.start_due(now):
                self._start(replica, now, first=False)
            return
        process = replica.process
        assert process is not None
        ended = process.poll()
        if ended is not None:
            self._ended(replica, ended, now)
            return
        if life.stopping:
            if life.kill_due(now):
                self._event(
                    "killed",
                    replica=replica.name,
                    reason=f"{life.stopping_for}: still running after the grace period",
                )
                process.kill()
            return
        assert replica.probes is not None
        for kind in replica.probes.due(now):
            probe = getattr(self.spec, f"{kind}_probe")
            self._probes.submit(process, kind, probe, replica.host, replica.port)

    def _take_probe_results(self, now: float) -> None:
        for process, kind, ok, seen in self._probes.results():
            replica = next((r for r in self.replicas if r.process is process), None)
            if replica is None:
                continue  # about a process that is gone; its successor has its own probes
            replica.last_probe[kind] = seen
            if not replica.life.probed:
                continue  # being stopped: probes no longer count
            assert replica.probes is not None
            for event in replica.probes.record(kind, ok, now):
                self._apply(replica, event, now, seen)

    def _apply(self, replica: _Replica, event: str, now: float, seen: str) -> None:
        """Act on what the probes say, as the kubelet and the endpoints controller do."""
        detail = {"probe": seen} if seen else {}
        if event == "ready":
            replica.ever_ready = True
            # The balancer is told first: a replica seen ready has been routed to (provision).
            if replica.life.phase is Phase.RUNNING and self._balancer is not None:
                self._balancer.set_ready(replica.name, True)
            replica.life.became_ready(now)
        elif event == "unready":
            self._unroute(replica)
        self._event(event, replica=replica.name, **detail)
        if event in ("liveness-failed", "startup-failed"):
            self._terminate(replica, event, now)

    def _unroute(self, replica: _Replica) -> None:
        replica.life.became_unready()
        if self._balancer is not None:
            self._balancer.set_ready(replica.name, False)

    def _terminate(
        self, replica: _Replica, why: str, now: float, *, deliberate: bool = False
    ) -> bool:
        """SIGTERM now (it is restarted once it ended: at once when ``deliberate``), SIGKILL
        when the grace is over; False when it was not running to be stopped."""
        grace = self.spec.termination_grace_period_s
        if not replica.life.probed:
            return False
        self._unroute(replica)
        replica.life.terminate(why, now, grace, deliberate=deliberate)
        self._sigterm(replica, why, grace)
        return True

    def _sigterm(self, replica: _Replica, why: str, grace: float) -> None:
        assert replica.process is not None
        replica.process.signal(signal.SIGTERM)
        self._event("terminating", replica=replica.name, reason=why, grace_s=grace)

    def _ended(self, replica: _Replica, ended: Exit, now: float) -> None:
        process = replica.process
        assert process is not None
        self._unroute(replica)
        fields: dict[str, Any] = {"replica": replica.name, "reason": ended.reason}
        if ended.code is not None:
            fields["exit_code"] = ended.code
        if ended.oom_killed:
            self._event("oom-killed", **fields)
        elif replica.life.stopping:
            self._event("stopped", **fields, after=replica.life.stopping_for)
        else:
            self._event("crashed", **fields)
        process.close()
        self._restart_or_delete(replica, now)

    def _restart_or_delete(self, replica: _Replica, now: float) -> None:
        """restartPolicy Always, with CrashLoopBackOff's doubling delay; or, if it was being
        deleted, its removal."""
        delay = replica.life.ended(now)
        if delay is None:
            self._delete(replica)
        elif replica.life.deliberate and replica.life.start_due(now):  # a rollout: at once
            self._start(replica, now, first=False)
        else:
            self._event("back-off", replica=replica.name, delay_s=delay)

    # -- metrics and autoscaling ------------------------------------------------------

    def _sample(self, now: float) -> None:
        usage: dict[str, Usage] = {}
        for replica in self.replicas:
            seen = replica.process.usage() if replica.life.has_process and replica.process else None
            if seen is not None:
                usage[replica.name] = seen
        files, connections = balancer_reading(self._balancer, {r.name for r in self.replicas})
        lives = [r.life for r in self.replicas]
        self._feed.sample(now, usage, lives, self._desired, balancer=files, connections=connections)

    def _autoscale(self, now: float) -> None:
        assert self._hpa is not None
        live = [r for r in self.replicas if r.life.counted]
        cpu, memory = self._feed.utilisation(now, [r.life for r in live])
        # As Kubernetes does: the HPA scales the target's desired count (the Deployment's
        # spec.replicas), not the pods that happen to exist; the ReplicaSet then reconciles.
        decision = self._hpa.decide(now, self._desired, cpu=cpu, memory=memory)
        if decision.replicas != self._desired:
            self._event(
                "scaled", **{"from": self._desired, "to": decision.replicas}, reason=decision.reason
            )
            self._desired = decision.replicas
        self._reconcile(now, live)

    def _reconcile(self, now: float, live: list[_Replica]) -> None:
        """Create or delete replicas until there are as many as desired (a quota denial is
        retried at every sync, and recorded once per reason)."""
        if len(live) < self._desired:
            for _ in range(self._desired - len(live)):
                if not self._create(now, reason="scale-up"):
                    break
            return
        going = sorted(live, key=lambda r: r.life.scale_in_key())
        for replica in going[: len(live) - self._desired]:
            self._remove(replica, "scale-down", now, self.spec.termination_grace_period_s)

    def _remove(self, replica: _Replica, why: str, now: float, grace: float) -> None:
        """Delete a replica: no new connections; it goes when its process has ended."""
        if self._balancer is not None:
            self._balancer.remove(replica.name)
        outcome = replica.life.delete(why, now, grace)
        if outcome is Deletion.GONE:  # nothing ran: it simply goes
            self._delete(replica)
        elif outcome is Deletion.SIGNAL:
            self._sigterm(replica, why, grace)

    def _delete(self, replica: _Replica) -> None:
        self.replicas.remove(replica)
        self._feed.forget(replica.name)
        if self._balancer is not None:
            self._balancer.remove(replica.name)
        self._event("deleted", replica=replica.name)

    # -- stopping ---------------------------------------------------------------------

    def _stop_everything(self) -> None:
        # A paused replica resumes, so it can stop (a failed undo: the teardown's step says it).
        with contextlib.suppress(Exception):
            self._faults.undo_all()
        if self._balancer is not None:
            # No new connections; those open end when their replica does.
            for replica in self.replicas:
                self._balancer.set_ready(replica.name, False)
        grace = min(self.spec.termination_grace_period_s, self.options.teardown_grace_s)
        now = time.monotonic()
        for replica in list(self.replicas):
            outcome = replica.life.delete("teardown", now, grace)
            if outcome is Deletion.SIGNAL:
                self._sigterm(replica, "teardown", grace)
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
            elif replica.life.phase is Phase.DELETING:
                self._event("stopped", replica=replica.name, reason=ended.reason, after="teardown")
            process.close()
        self._event("stack-deleted")

    # -- reporting ----------------------------------------------------------------------

    def _crash_looping(self) -> str | None:
        return crash_looping(self.replicas, self._events, self.work_dir / "replicas")

    def _not_ready_reason(self) -> str:
        return not_ready_reason(
            self.replicas, self._events, self.work_dir / "replicas", self.options.ready_timeout_s
        )

    def _event(self, kind: str, **fields: Any) -> None:
        event = new_event("stack", kind, **fields)
        self._events.append(event)
        if self.on_event is not None:
            with contextlib.suppress(Exception):
                self.on_event(dict(event))


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
