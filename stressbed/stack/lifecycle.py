"""A replica's life as Kubernetes runs a pod's container, as a pure, clock-driven state machine.

One :class:`Phase` says where a replica is; the controller that owns processes (the local
backend) asks what is due and reports what happened, and acts on the answers:

    BACK_OFF --start--> RUNNING --ready--> READY --unready--> RUNNING
    RUNNING/READY --terminate (liveness or startup failed)--> TERMINATING --ended--> BACK_OFF
    RUNNING/READY --terminate (a restart on purpose)--> TERMINATING --ended--> BACK_OFF, due now
    RUNNING/READY --ended (crashed, OOM-killed)--> BACK_OFF
    any --delete (scale-in, teardown)--> DELETING --ended--> DELETED   (BACK_OFF: DELETED at once)

A replica that ended is restarted (restartPolicy Always) after CrashLoopBackOff's doubling
delay, reset once it had run for :attr:`BackOff.reset_s`; one stopped on purpose (a restart
fault: a rollout replacing its pod) is started again at once, its crash streak forgotten, as a
new pod's would be. Terminating and deleting replicas get SIGKILL when their grace period is
over (:meth:`Lifecycle.kill_due`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

__all__ = ["BackOff", "Deletion", "Lifecycle", "Phase"]


class Phase(enum.Enum):
    BACK_OFF = "back-off"  # no process: waiting to be started (its first start, or a restart)
    RUNNING = "running"  # its process runs; no traffic (not ready yet, or unready)
    READY = "ready"  # its process runs and new connections are routed to it
    TERMINATING = "terminating"  # SIGTERM sent; restarted once its process has ended
    DELETING = "deleting"  # going away: SIGTERM sent; removed once its process has ended
    DELETED = "deleted"  # gone for good


class Deletion(enum.Enum):
    """What deleting a replica asks of its controller."""

    GONE = "gone"  # nothing ran: it is deleted now
    SIGNAL = "signal"  # send SIGTERM now; it goes when its process ends
    WAIT = "wait"  # already signalled; it goes when its process ends


@dataclass(frozen=True)
class BackOff:
    """CrashLoopBackOff: ``base_s`` doubling up to ``max_s``, reset after ``reset_s`` running.
    (Kubernetes: 10 s, 300 s, 10 min; the local backend scales them down.)"""

    base_s: float = 1.0
    max_s: float = 30.0
    reset_s: float = 60.0

    def delay(self, crashes: int) -> float:
        """The wait before restart number ``crashes`` (1 for the first of a streak)."""
        return float(min(self.base_s * 2 ** (crashes - 1), self.max_s))


_HAS_PROCESS = frozenset({Phase.RUNNING, Phase.READY, Phase.TERMINATING, Phase.DELETING})


@dataclass
class Lifecycle:
    name: str
    ordinal: int
    backoff: BackOff = BackOff()
    phase: Phase = Phase.BACK_OFF
    restarts: int = 0
    crashes: int = 0  # consecutive, for the back-off
    start_at: float = 0.0  # BACK_OFF: when the next start is due
    kill_at: float = math.inf  # TERMINATING/DELETING: SIGKILL when the grace period is over
    stopping_for: str = ""  # why it was told to stop
    deliberate: bool = False  # TERMINATING on purpose (a restart), not for a failed probe
    restarted_on_purpose: int = 0  # of its restarts, those done on purpose
    started_at: float = 0.0  # when its current process started
    ready_since: float = 0.0

    # -- what the controller asks -----------------------------------------------------------

    @property
    def has_process(self) -> bool:
        """A process of this replica runs (or is being stopped)."""
        return self.phase in _HAS_PROCESS

    @property
    def probed(self) -> bool:
        """Its probes run and their results count (not while it is being stopped)."""
        return self.phase in (Phase.RUNNING, Phase.READY)

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    @property
    def stopping(self) -> bool:
        """It was told to stop: its end is a stop, not a crash."""
        return self.phase in (Phase.TERMINATING, Phase.DELETING)

    @property
    def counted(self) -> bool:
        """It counts as one of the stack's replicas (a deleting one no longer does)."""
        return self.phase not in (Phase.DELETING, Phase.DELETED)

    def start_due(self, now: float) -> bool:
        return self.phase is Phase.BACK_OFF and now >= self.start_at

    def kill_due(self, now: float) -> bool:
        return self.stopping and now >= self.kill_at

    def scale_in_key(self) -> tuple[bool, bool, int, int]:
        """Which replicas go first, as the ReplicaSet controller picks: not running or not
        ready before ready, then the most restarted, then the newest (sort ascending)."""
        return (self.probed, self.ready, -self.restarts, -self.ordinal)

    # -- what happened ------------------------------------------------------------------------

    def start(self, now: float, *, first: bool) -> None:
        """Its process is being started (a failed start is reported with :meth:`ended`)."""
        if self.phase is not Phase.BACK_OFF:
            raise ValueError(f"replica {self.name} cannot start while {self.phase.value}")
        if not first:
            self.restarts += 1
            self.restarted_on_purpose += self.deliberate
        self.phase = Phase.RUNNING
        self.started_at = now
        self.stopping_for = ""
        self.deliberate = False
        self.kill_at = math.inf

    def became_ready(self, now: float) -> bool:
        """Readiness passed; True if it is routed from now on."""
        if self.phase is not Phase.RUNNING:
            return False
        self.phase = Phase.READY
        self.ready_since = now
        return True

    def became_unready(self) -> bool:
        """Readiness failed; True if it was routed until now."""
        if self.phase is not Phase.READY:
            return False
        self.phase = Phase.RUNNING
        return True

    def terminate(self, why: str, now: float, grace_s: float, *, deliberate: bool = False) -> bool:
        """Stop it to restart it (liveness or startup failed; ``deliberate``: a restart on
        purpose, started again with no back-off); True: send SIGTERM now."""
        if not self.probed:
            return False
        self.phase = Phase.TERMINATING
        self.stopping_for = why
        self.deliberate = deliberate
        self.kill_at = now + grace_s
        return True

    def delete(self, why: str, now: float, grace_s: float) -> Deletion:
        """Remove it for good (scale-in, teardown)."""
        if self.phase is Phase.DELETED:
            raise ValueError(f"replica {self.name} is already deleted")
        if self.phase is Phase.BACK_OFF:
            self.phase = Phase.DELETED
            return Deletion.GONE
        if self.probed:
            self.phase = Phase.DELETING
            self.stopping_for = why
            self.kill_at = now + grace_s
            return Deletion.SIGNAL
        if self.stopping:  # already signalled: the shorter of the two grace periods holds
            self.phase = Phase.DELETING
            self.kill_at = min(self.kill_at, now + grace_s)
        return Deletion.WAIT

    def ended(self, now: float) -> float | None:
        """Its process ended (or could not start): the restart delay, or None when it is
        deleted instead."""
        if self.phase is Phase.DELETING:
            self.phase = Phase.DELETED
            return None
        if self.phase is Phase.TERMINATING and self.deliberate:
            # A rollout, not a crash: its replacement starts now, with a new pod's clean slate.
            self.crashes = 0
            delay = 0.0
        else:
            ran = now - self.started_at
            self.crashes = 1 if ran >= self.backoff.reset_s else self.crashes + 1
            delay = self.backoff.delay(self.crashes)
        self.phase = Phase.BACK_OFF
        self.start_at = now + delay
        self.kill_at = math.inf
        return delay
