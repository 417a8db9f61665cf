"""What one Kubernetes run's stack and fleet share (:class:`RunState`: the Pulumi program's
inputs, the engine, the cluster), and the Stack side of the run (:class:`KubeStack`): ``up`` of
the agent stack, the agent pods' metrics scraped through the pod proxy, the stack's record
(:mod:`._watch`), and the destroy that always follows.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ProvisionError, TeardownError
from ...results.target_metrics import parse_selector
from ...scenario.faults import Fault
from ...stack.probes import ready_within_s
from ...stack.spec import StackSpec
from .._teardown import Step, run_steps
from ..base import EventSink, new_event
from ..scrape import Scraper
from ._cluster import ClusterApi, ProxyUnreachable
from ._engine import Engine, bounded, finish_commands, prepare_state
from ._faults import ChaosFaults, PodHook
from ._preflight import ClusterAccess, KubernetesOptions
from ._proxy import ProxyCheck
from ._rollout import SCHEDULING_S
from ._watch import StackWatch
from .manifests import Cluster, ClusterFleet

__all__ = ["KubeStack", "RunState", "last_line"]

#: How often the agent pods are listed for the metrics scraper.
POD_LIST_S = 5.0
#: How long undoing the faults may take (each Chaos Mesh object's deletion is awaited).
FAULTS_UNDO_S = 120.0
#: Beyond the destroy's own timeout (after which its CLI is killed): removing the stack.
DESTROY_MARGIN_S = 30.0
#: A teardown abandoned during the destroy: how long the interrupted CLI gets to stop.
ABANDON_WAIT_S = 10.0


@dataclass
class RunState:
    """What one run's stack and fleet share: the Pulumi program's inputs."""

    spec: StackSpec
    cluster: Cluster
    access: ClusterAccess
    engine: Engine
    cluster_api: ClusterApi
    options: KubernetesOptions
    secret_values: dict[str, str] = field(repr=False)  # never in a traceback or a log line
    work_dir: Path = Path()
    state_dir: Path = Path()  # the stack's Pulumi state and passphrase (outside the results)
    url: str = ""
    fleet: ClusterFleet | None = None
    fleets: int = 0  # how many fleets this run has brought up (a capacity search: one a probe)
    fleet_url: str = ""  # what the runners load (TARGET_URL of the fleet's env)
    #: The runners' secrets and the fleet's control token: Pulumi secrets, never shown.
    fleet_secrets: dict[str, str] = field(default_factory=dict, repr=False)
    created: bool = False
    kept: bool = False  # a destroy failed: the state stays for `pulumi destroy` to finish

    def program(self) -> None:
        """The Pulumi program of this run: the agent stack, and the fleet once it is known."""
        import pulumi  # noqa: PLC0415 - only with the kubernetes extra
        import pulumi_kubernetes as k8s  # noqa: PLC0415

        from .components import (  # noqa: PLC0415 - imports pulumi
            AgentStack,
            AgentStackArgs,
            RunnerFleet,
            RunnerFleetArgs,
        )

        # One file: given by path (its secrets stay in the file, not in the state). Several
        # ($KUBECONFIG's list, which the provider would take for a kubeconfig's text): "",
        # which the provider reads as unset, so that its own loader (client-go's, kubectl's)
        # merges the KUBECONFIG the engine sets. (None would not do: the SDK then reads this
        # process's KUBECONFIG into the input.)
        provider = k8s.Provider(
            "cluster",
            kubeconfig="" if self.access.merged_with else str(self.access.kubeconfig),
            context=self.access.context,
        )
        opts = pulumi.ResourceOptions(providers=[provider])
        agent = AgentStack(
            "agent",
            AgentStackArgs(self.spec, self.cluster, self.fleet, self.secret_values),
            opts,
        )
        if self.fleet is not None:
            RunnerFleet(
                "fleet",
                RunnerFleetArgs(
                    self.fleet, self.fleet_url, self.cluster, self.fleet_secrets, [agent]
                ),
                opts,
            )


class KubeStack:
    """The Stack side of a Kubernetes run (see :class:`stressbed.backends.base.Stack`)."""

    def __init__(self, run: RunState, on_event: EventSink | None = None) -> None:
        self.state = run
        self.url = ""
        self.on_event = on_event
        self._events: list[dict[str, Any]] = []
        self._scraper: Scraper | None = None
        self._watch: StackWatch | None = None
        self._chaos: ChaosFaults | None = None
        self._chaos_left: list[str] = []
        self._proxy = ProxyCheck(self._event, run.cluster.control_plane_cidrs)

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def _event(self, kind: str, **fields: Any) -> None:
        event = new_event("stack", kind, **fields)
        self._events.append(event)
        if self.on_event is not None:
            with contextlib.suppress(Exception):  # a live line must not break the run
                self.on_event(dict(event))

    def provision(self) -> str:
        run = self.state
        self._event("stack-creating", namespace=run.cluster.namespace, context=run.access.context)
        prepare_state(run.state_dir)
        run.created = True  # from here on, teardown destroys whatever up got to
        try:
            run.engine.up(run.program)
        except Exception as exc:
            raise ProvisionError(f"pulumi up failed: {last_line(exc)}") from exc
        target = run.spec.target
        run.url = f"http://{target.name}.{run.cluster.namespace}.svc:{target.port}"
        self.url = run.url
        self._event("stack-ready", url=run.url, namespace=run.cluster.namespace)
        self._scraper = self._make_scraper()
        if self._scraper is not None:
            self._scraper.start()
        spec = run.spec.effective()
        self._watch = StackWatch(
            run.cluster_api,
            run.cluster.namespace,
            spec.target.name,
            self._event,
            autoscaled=spec.autoscaler is not None,
        )
        self._watch.start()
        return run.url

    def _make_scraper(self) -> Scraper | None:
        """The agent pods' own metrics, through the API server's pod proxy, once a second."""
        run = self.state
        metrics = run.spec.metrics
        if metrics is None:
            return None
        ns, port, path = run.cluster.namespace, metrics.port or run.spec.target.port, metrics.path
        seen: dict[str, Any] = {"at": -math.inf, "pods": {}}

        def endpoints() -> dict[str, str]:
            now = time.monotonic()
            if now - seen["at"] >= POD_LIST_S:  # the pods, listed every few seconds only
                seen["at"] = now
                with contextlib.suppress(Exception):  # an API blip: the last list stands
                    pods = run.cluster_api.pods(ns, "agent")
                    seen["pods"] = {p.name: p.name for p in pods if p.phase == "Running"}
            return dict(seen["pods"])

        def get(pod: str, timeout: float) -> str:
            try:
                text = run.cluster_api.proxy(ns, pod, port, path, timeout)
            except ProxyUnreachable as exc:
                self._proxy.refused(pod, port, str(exc))
                raise
            self._proxy.reached(pod)
            return text

        return Scraper(endpoints, [parse_selector(s) for s in metrics.series], get=get)

    def teardown(self) -> None:
        """Undo the faults, stop the scraper and the watch, destroy, then remove the stack:
        each step bounded, and the destroy runs whatever the steps before it did. A destroy
        that fails keeps the stack, so that ``pulumi destroy`` can finish the job, and says
        how; every failed step is said (TeardownError, exit 3), a fault's Chaos Mesh object
        or a neighbour's namespace that would not go too. A teardown abandoned during the
        destroy interrupts it first."""
        run = self.state
        steps = [Step("undo the faults", self._undo_faults, FAULTS_UNDO_S)]
        if self._scraper is not None:
            steps.append(Step("stop the metrics scraper", self._scraper.stop))
        if self._watch is not None:
            steps.append(Step("stop the watch", self._watch.stop))
        steps.append(
            Step(
                "pulumi destroy",
                self._destroy,
                run.options.destroy_timeout_s + DESTROY_MARGIN_S,
                on_abandon=lambda: run.engine.stop(ABANDON_WAIT_S),
            )
        )
        failures = run_steps(steps, self._event)
        spaces = [n for n in self._chaos_left if n.startswith("namespace/")]
        objects = [n for n in self._chaos_left if n not in spaces]
        if objects and not run.created and not run.kept:
            # The namespace took them with it; a fault that outlived its end still ran.
            failures.append(
                "a fault stayed applied until the namespace was destroyed: its Chaos Mesh "
                "objects " + ", ".join(objects) + " would not delete"
            )
        for name in spaces:
            # Outside the run's namespace, which owns it: the cluster's garbage collector
            # deletes it once that is gone, but it outlived its fault, and may outlive the run.
            failures.append(
                f"a neighbour's {name} would not delete (`kubectl delete {name}`; owned by "
                f"namespace {run.cluster.namespace}, the cluster deletes it once that is gone)"
            )
        if failures:
            raise TeardownError(failures)

    def _undo_faults(self) -> None:
        if self._chaos is not None:
            self._chaos_left = self._chaos.undo_all()
            if self._chaos_left:
                self._event("fault-left", chaos_objects=list(self._chaos_left))

    def _destroy(self) -> None:
        run = self.state
        if not run.created:
            if not run.kept:  # nothing was ever up: no state worth keeping
                shutil.rmtree(run.state_dir, ignore_errors=True)
            return
        try:
            bounded(run.engine.destroy, run.options.destroy_timeout_s, run.engine.kill)
        except Exception as exc:
            self._event("destroy-failed", reason=last_line(exc))
            run.created = False
            run.kept = True
            raise ProvisionError(
                f"pulumi destroy failed: {last_line(exc)}; the stack "
                f"{run.cluster.namespace!r} is kept: {self._finish()}"
            ) from exc
        self._event("stack-destroyed", namespace=run.cluster.namespace)
        run.engine.remove()
        self._event("stack-removed")
        run.created = False
        # Destroyed: nothing is left to decrypt, and nothing of the run is kept outside results/.
        shutil.rmtree(run.state_dir, ignore_errors=True)

    def _finish(self) -> str:
        """The commands that finish the destroy by hand, from any directory: absolute paths,
        the project's directory (``--cwd``), the stack's full name, and the variables they
        need named (a file's path, never a secret's value)."""
        run = self.state
        return finish_commands(
            run.state_dir, run.cluster.namespace, run.options.state, run.access.path_list
        )

    def schedule_faults(self, faults: Sequence[Fault], started_at: float) -> None:
        """Each fault a Chaos Mesh object at its instant, a rolling restart the Deployment's
        rollout (:mod:`._faults`)."""
        if not faults:
            return
        run = self.state
        if self._chaos is None:
            hook = run.spec.fault_hook
            self._chaos = ChaosFaults(
                run.cluster_api,
                run.cluster,
                run.spec.target.name,
                self._event,
                cpu_limit_m=run.spec.effective().limits.cpu_m,
                hook=(
                    PodHook(hook, run.secret_values.get(hook.token_env, ""), run.spec.target.port)
                    if hook is not None
                    else None
                ),
                proxy=self._proxy,
                grace_s=run.spec.termination_grace_period_s,
                # A new pod's probes' budget, and its scheduling and image pull.
                rollout_deadline_s=ready_within_s(run.spec) + SCHEDULING_S,
                runner_image=run.options.runner_image,
            )
        self._chaos.arm(faults, started_at)

    def leftovers(self) -> str:
        spaces = [n for n in self._chaos_left if n.startswith("namespace/")]
        left = [f"a neighbour's {n} (`kubectl delete {n}`)" for n in spaces]
        if self.state.created:
            left.insert(
                0,
                f"the Pulumi stack {self.state.cluster.namespace!r} and its namespace (with any "
                "Chaos Mesh object of the run's faults in it; a neighbour's namespace, which it "
                f"owns, goes with it): {self._finish()}",
            )
        return "; ".join(left)

    def failure(self) -> str | None:
        return None  # the cluster keeps the stack up; failing runner pods are followed instead

    def report(self) -> dict[str, Any]:
        spec, watch = self.state.spec.effective(), self._watch
        return {
            "backend": "kubernetes",
            "url": self.state.url,
            "namespace": self.state.cluster.namespace,
            "context": self.state.access.context,
            "enforcement": "kubernetes (kubelet, cgroups on the nodes)",
            "replicas": {
                "desired": watch.desired if watch is not None else spec.replicas,
                "restarts": dict(watch.restarts) if watch is not None else {},
                "max": spec.autoscaler.max_replicas if spec.autoscaler else None,
            },
            "limits": spec.limits.figures(),
            "requests": spec.requests.figures(),
            "target_metrics": self._scraper.report() if self._scraper is not None else {},
            "timeseries": watch.rows() if watch is not None else [],
        }


def last_line(exc: BaseException) -> str:
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return lines[-1] if lines else type(exc).__name__
