"""What a Kubernetes run records of its agent stack while it runs, as the local stack does:
a row every few seconds (replicas, ready, the autoscaler's desired count, each pod's CPU and
memory) and the events a capacity cause or a finding reads (``scaled``, ``restarted``,
``oom-killed``, ``unready``, ``liveness-failed``, ``startup-failed``, ``quota-denied``).

Everything comes through :class:`~._cluster.ClusterApi`: the Deployment's and the
HorizontalPodAutoscaler's status, the agent pods, the namespace's Warning events, and the pods'
usage from metrics.k8s.io where a metrics-server serves it (without one, the rows carry no
CPU or memory, said once as a ``usage-unavailable`` event). A failed poll is skipped, never the
run's failure: the fleet follows the runners on its own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._cluster import ClusterApi, ClusterEvent

__all__ = ["StackWatch"]

#: Seconds between two samples: five API calls each, well within any API server's limits.
WATCH_S = 2.0
#: Usage reads that fail in a row before metrics.k8s.io is taken to be absent.
USAGE_TRIES = 3
#: Samples that fail in a row before it is said (a ``watch-failed`` event: the kubeconfig's
#: user may lack a permission docs/backends/kubernetes.md lists).
WATCH_TRIES = 3

#: Warning events of the namespace, as the local stack names what it saw.
_WARNINGS = (
    ("FailedCreate", "exceeded quota", "quota-denied"),
    ("Unhealthy", "Liveness probe failed", "liveness-failed"),
    ("Unhealthy", "Startup probe failed", "startup-failed"),
)


@dataclass
class _Seen:
    """One pod as the last sample saw it."""

    restarts: int
    ready: bool


class StackWatch:
    """The agent stack's rows and events, sampled every :data:`WATCH_S` on a thread."""

    def __init__(
        self,
        api: ClusterApi,
        namespace: str,
        name: str,
        event: Callable[..., None],
        *,
        autoscaled: bool,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.autoscaled = autoscaled
        self._event = event
        self.series: list[dict[str, Any]] = []
        self.restarts: dict[str, int] = {}
        self.desired: int | None = None
        self._pods: dict[str, _Seen] = {}
        self._warnings: dict[str, int] = {}  # event uid -> the count already said
        self._since = time.time()
        self._usage_failures = 0
        self._usage = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kube-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.series)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.sample()
                failures = 0
            except Exception as exc:  # an API blip costs one sample, not the run
                failures += 1
                if failures == WATCH_TRIES:  # said once a run of failures, as it starts
                    with contextlib.suppress(Exception):
                        self._event("watch-failed", reason=_first_line(exc))
            self._stop.wait(WATCH_S)

    def sample(self) -> None:
        """One sample: a row, and the events since the last one."""
        scale = self.api.scale(self.namespace, self.name, autoscaled=self.autoscaled)
        pods = self.api.pods(self.namespace, "agent", self.name)
        usage = self._read_usage()
        now = time.time()
        if self.desired is not None and scale.desired != self.desired:
            self._event("scaled", **{"from": self.desired, "to": scale.desired})
        self.desired = scale.desired
        for pod in pods:
            seen = self._pods.get(pod.name)
            if seen is not None and pod.restarts > seen.restarts:
                reason = pod.last_terminated or "restarted"
                if reason == "OOMKilled":
                    self._event("oom-killed", replica=pod.name, restarts=pod.restarts)
                self._event("restarted", replica=pod.name, restarts=pod.restarts, reason=reason)
            if seen is not None and seen.ready and not pod.ready and pod.phase == "Running":
                self._event("unready", replica=pod.name)
            self._pods[pod.name] = _Seen(pod.restarts, pod.ready)
            self.restarts[pod.name] = pod.restarts
        self._read_warnings()
        row = {
            "t": round(now, 3),
            "replicas": scale.replicas,
            "ready": scale.ready,
            "desired": scale.desired,
            "pods": {
                name: {"cpu_m": round(cpu, 1), "memory_mib": round(mib, 2)}
                for name, (cpu, mib) in sorted(usage.items())
            },
        }
        with self._lock:
            self.series.append(row)

    def _read_usage(self) -> dict[str, tuple[float, float]]:
        if not self._usage:
            return {}
        try:
            found = self.api.pod_usage(self.namespace, "agent", self.name)
        except Exception as exc:
            self._usage_failures += 1
            if self._usage_failures >= USAGE_TRIES:
                self._usage = False
                self._event("usage-unavailable", reason=_first_line(exc))
            return {}
        self._usage_failures = 0
        return found

    def _read_warnings(self) -> None:
        events: list[ClusterEvent] = self.api.warnings(self.namespace)
        for seen in events:
            if seen.last < self._since or self._warnings.get(seen.uid, 0) >= seen.count:
                continue
            self._warnings[seen.uid] = seen.count
            for reason, text, kind in _WARNINGS:
                if seen.reason == reason and text in seen.message:
                    self._event(kind, replica=seen.involved, reason=_first_line(seen.message))
                    break


def _first_line(what: object) -> str:
    lines = [x.strip() for x in str(what).splitlines() if x.strip()]
    return lines[0][:300] if lines else type(what).__name__
