"""Probe semantics of Kubernetes for one replica, as a clock-driven state machine.

The local backend asks :meth:`ReplicaProbes.due` which probes to run now, runs them against the
replica (HTTP GET, TCP connect or a command, bounded by the probe's timeout; a timeout is a
failure) and reports each result to :meth:`ReplicaProbes.record`, which returns what changed:

- the startup probe gates the others; its first success means ``started``; ``failure_threshold``
  consecutive failures mean ``startup-failed`` (the replica is killed and restarted);
- readiness starts false; ``success_threshold`` consecutive successes make it ``ready``,
  ``failure_threshold`` consecutive failures make it ``unready``; it never restarts anything;
- liveness: ``failure_threshold`` consecutive failures mean ``liveness-failed`` (SIGTERM, the
  grace period, SIGKILL, restart);
- a replica without a startup probe is started at once; without a readiness probe it is ready
  once started.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import Probe, StackSpec

__all__ = ["NO_STARTUP_PROBE_S", "ReplicaProbes", "ready_within_s"]

KINDS = ("startup", "readiness", "liveness")
#: How long a replica without a startup probe is given to start (nothing bounds it otherwise).
NO_STARTUP_PROBE_S = 120.0


def ready_within_s(spec: StackSpec) -> float:
    """How long a replica told to stop has, at most, until its replacement is ready: the
    termination grace, then the startup probe's budget (its initial delay and
    ``failure_threshold`` periods; NO_STARTUP_PROBE_S without one), then the readiness
    probe's first pass (its initial delay, ``success_threshold`` periods and a timeout)."""
    startup, readiness = spec.startup_probe, spec.readiness_probe
    started = (
        startup.initial_delay_s + startup.period_s * startup.failure_threshold
        if startup is not None
        else NO_STARTUP_PROBE_S
    )
    ready = (
        readiness.initial_delay_s
        + readiness.period_s * readiness.success_threshold
        + readiness.timeout_s
        if readiness is not None
        else 0.0
    )
    return float(spec.termination_grace_period_s) + started + ready


@dataclass
class _Track:
    probe: Probe
    next_at: float
    successes: int = 0
    failures: int = 0


class ReplicaProbes:
    def __init__(self, spec: StackSpec, started_at: float) -> None:
        self.created_at = started_at
        self.tracks: dict[str, _Track] = {}
        for kind in KINDS:
            probe: Probe | None = getattr(spec, f"{kind}_probe")
            if probe is not None:
                self.tracks[kind] = _Track(probe, started_at + probe.initial_delay_s)
        self.started = "startup" not in self.tracks
        self.ready = self.started and "readiness" not in self.tracks

    def initial_events(self) -> list[str]:
        """What is true before any probe ran (no startup or readiness probe at all)."""
        return (["started"] if self.started else []) + (["ready"] if self.ready else [])

    def due(self, now: float) -> list[str]:
        """The probes to run now, in Kubernetes' order."""
        kinds = ["startup"] if not self.started else ["readiness", "liveness"]
        return [k for k in kinds if k in self.tracks and self.tracks[k].next_at <= now]

    def record(self, kind: str, ok: bool, now: float) -> list[str]:
        track = self.tracks[kind]
        track.next_at = now + track.probe.period_s
        if ok:
            track.successes += 1
            track.failures = 0
        else:
            track.failures += 1
            track.successes = 0
        if kind == "startup":
            return self._startup(track, now)
        if kind == "readiness":
            return self._readiness(track)
        if track.failures >= track.probe.failure_threshold:
            return ["liveness-failed"]
        return []

    def _startup(self, track: _Track, now: float) -> list[str]:
        if track.successes >= 1:
            self.started = True
            events = ["started"]
            for kind in ("readiness", "liveness"):
                if kind in self.tracks:
                    # Their initial delays run from the container's start, but they never
                    # run before the startup probe succeeded.
                    other = self.tracks[kind]
                    other.next_at = max(now, self.created_at + other.probe.initial_delay_s)
            if "readiness" not in self.tracks:
                self.ready = True
                events.append("ready")
            return events
        if track.failures >= track.probe.failure_threshold:
            return ["startup-failed"]
        return []

    def _readiness(self, track: _Track) -> list[str]:
        if not self.ready and track.successes >= track.probe.success_threshold:
            self.ready = True
            return ["ready"]
        if self.ready and track.failures >= track.probe.failure_threshold:
            self.ready = False
            return ["unready"]
        return []
