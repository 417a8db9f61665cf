"""Faults a scenario declares beside its load, and the resilience thresholds that judge them.

    fault.kill(replicas=1, at="60s")                               # SIGKILL one replica
    fault.pause("30s", replicas=1, at="2m")                        # frozen: answers nothing
    fault.latency("200ms", jitter="50ms", at="3m", lasting="30s")  # on the path to the target
    fault.loss("5%", at="4m", lasting="20s")
    fault.reset_connections(at="5m")
    fault.bandwidth("1mbit", at="5m", lasting="30s"), fault.slow_close("2s", at=..., lasting=...)
    fault.cpu(share=0.8, replicas=1, at="6m", lasting="30s")       # a hog inside its limits
    fault.memory("200Mi", replicas=1, at="7m", lasting="30s")
    fault.dependency("sink", at="8m", lasting="30s")               # its downstream fails
    fault.disk_fill(share=0.95, at="8m", lasting="30s")            # its writable path filled
    fault.io(replicas=1, at="8m", lasting="30s")                   # an IO hog inside its limits
    fault.slow_disk("1MiB/s", at="8m", lasting="30s")              # its disk throttled
    fault.neighbour(cpu=2, at="9m", lasting="1m")                  # a noisy neighbour beside it
    fault.restart(at="9m")                                         # every replica at once
    fault.rolling_restart(at="10m", max_unavailable=1)             # one at a time, as a rollout

The resilience thresholds that judge them (``recovery_time("< 30s")`` and the like) are
:mod:`.resilience`'s.

Faults are data like the rest of a scenario: checked when built (one line naming the field),
scaled with the scenario's timeline by ``--duration``, and listed by ``stressbed render``. Which
replicas a fault hits is chosen by ``seed`` (the same seed, the same replicas). Applying them is
the backends' (:attr:`~stressbed.backends.base.Capability.FAULTS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from .units import format_duration, parse_duration_ms, parse_percent, parse_size

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "FaultKind",
    "bandwidth",
    "check_faults",
    "cpu",
    "dependency",
    "disk_fill",
    "io",
    "kill",
    "latency",
    "loss",
    "memory",
    "neighbour",
    "pause",
    "reset_connections",
    "restart",
    "rolling_restart",
    "slow_close",
    "slow_disk",
]


@dataclass(frozen=True)
class FaultKind:
    """What a kind of fault is: whether it lasts, and whether it needs a provisioned stack."""

    name: str
    lasts: bool  # False: it happens at one instant (a kill, a reset)
    needs_stack: bool  # True: a replica's process or cgroup; False: the path to the target
    summary: str


FAULT_KINDS: Mapping[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind("kill", False, True, "SIGKILL of the replica; its restart policy acts"),
        FaultKind("pause", True, True, "the replica frozen: connections accepted, no answer"),
        FaultKind("latency", True, False, "added delay (and jitter) on the path to the target"),
        FaultKind("loss", True, False, "a share of the connections' data lost on the path"),
        FaultKind("reset", False, False, "every open connection to the target reset"),
        FaultKind("bandwidth", True, False, "each connection's data to the client rate-limited"),
        FaultKind("slow_close", True, False, "a closing connection held open for a while"),
        FaultKind("cpu", True, True, "a CPU hog inside the replica's cgroup, under its limits"),
        FaultKind("memory", True, True, "memory held inside the replica's cgroup"),
        FaultKind("dependency", True, True, "the target's downstream fails (its fault hooks)"),
        FaultKind(
            "neighbour",
            True,
            True,
            "a noisy neighbour on the same machine, outside the replicas' cgroups, burning "
            "CPU, holding memory and writing to their disk; judged by the isolation verdict",
        ),
        FaultKind(
            "io",
            True,
            True,
            "an IO hog inside the replica's cgroup: direct writes and reads of its disk, as "
            "fast as its IO limits allow",
        ),
        FaultKind(
            "slow_disk",
            True,
            True,
            "the replica's disk slowed: its reads and writes throttled to a rate, or each "
            "operation delayed",
        ),
        FaultKind(
            "disk_fill",
            True,
            True,
            "the replica's writable path filled to a share of its filesystem, or until full",
        ),
        FaultKind(
            "restart",
            False,
            True,
            "a graceful restart of the replicas at once: SIGTERM, SIGKILL after the grace, "
            "started again without back-off",
        ),
        FaultKind(
            "rolling_restart",
            False,
            True,
            "replicas restarted max_unavailable at a time, the next once the last is ready "
            "again (a rollout); ends when every one was",
        ),
    )
}


@dataclass(frozen=True)
class Fault:
    """One fault: what, from when (``at_ms`` after the load starts), for how long
    (``lasting_ms``, 0 for an instant), on how many replicas (None: all of them, or the whole
    path), with the kind's own parameters."""

    kind: str
    at_ms: float
    lasting_ms: float = 0.0
    replicas: int | None = None
    params: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    name: str = field(default="")

    @property
    def end_ms(self) -> float:
        return self.at_ms + self.lasting_ms

    @property
    def needs_stack(self) -> bool:
        return FAULT_KINDS[self.kind].needs_stack

    def param(self, key: str) -> Any:
        return dict(self.params).get(key)

    def scaled(self, factor: float) -> Fault:
        """The fault on a timeline ``factor`` times as long (``--duration``)."""
        return replace(
            self, at_ms=round(self.at_ms * factor), lasting_ms=round(self.lasting_ms * factor)
        )

    @property
    def label(self) -> str:
        """``kill 1 replica at 1m`` / ``latency 200ms +-50ms at 3m for 30s``."""
        what = self.kind
        shown = [_shown(key, value) for key, value in self.params if value is not None]
        if shown:
            what += " " + " ".join(shown)
        if self.replicas is not None:
            what += f" on {self.replicas} replica{'s' if self.replicas != 1 else ''}"
        text = f"{what} at {format_duration(self.at_ms)}"
        if self.lasting_ms:
            text += f" for {format_duration(self.lasting_ms)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "at_s": self.at_ms / 1000,
            "lasting_s": self.lasting_ms / 1000,
            "replicas": self.replicas,
            "params": dict(self.params),
            "seed": self.seed,
            "label": self.label,
        }


def _shown(key: str, value: Any) -> str:
    if key in ("latency_ms", "jitter_ms"):
        return ("+-" if key == "jitter_ms" else "") + format_duration(value)
    if key in ("share", "loss"):
        return f"{value:.0%}" if key == "loss" else f"{value:.0%} CPU"
    if key == "memory":
        return f"{value / 2**20:g}Mi"
    if key == "rate":
        return f"{value * 8 / 1000:g}kbit/s"
    if key == "close_ms":
        return format_duration(value)
    if key == "max_unavailable":
        return f"{value} at a time"
    if key == "cores":
        return f"{value:g} cores"
    if key == "fill":
        return "until full" if value >= 1 else f"to {value:.0%}"
    if key == "bps":
        return f"{value / 2**20:g}MiB/s"
    if key == "delay_ms":
        return f"{format_duration(value)} per operation"
    if key == "io":
        return "writing to the disk" if value else ""
    return str(value)


def _fault(
    kind: str,
    *,
    at: object,
    lasting: object = None,
    replicas: object = None,
    seed: object = 0,
    **params: Any,
) -> Fault:
    where = f"faults.{kind}"
    at_ms = parse_duration_ms(at, f"{where}.at", allow_zero=True)
    spec = FAULT_KINDS[kind]
    lasting_ms = 0.0
    if spec.lasts:
        if lasting is None:
            raise ConfigError(f"{where}.lasting", None, "how long the fault lasts, like '30s'")
        lasting_ms = parse_duration_ms(lasting, f"{where}.lasting")
    elif lasting is not None:
        raise ConfigError(f"{where}.lasting", lasting, f"none: a {kind} happens at one instant")
    count: int | None = None
    if replicas is not None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ConfigError(
                f"{where}.replicas", replicas, "a whole number of replicas, 1 or more"
            )
        count = replicas
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}.seed", seed, "a whole number, 0 or more")
    return Fault(kind, at_ms, lasting_ms, count, tuple(params.items()), seed, kind)


def kill(*, at: object, replicas: int = 1, seed: int = 0) -> Fault:
    """SIGKILL ``replicas`` replicas at ``at`` (chosen by ``seed``); their restart policy acts."""
    return _fault("kill", at=at, replicas=replicas, seed=seed)


def pause(lasting: object, *, at: object, replicas: int = 1, seed: int = 0) -> Fault:
    """Freeze ``replicas`` replicas for ``lasting``: connections are accepted, nothing is
    answered (the cgroup freezer, or SIGSTOP/SIGCONT)."""
    return _fault("pause", at=at, lasting=lasting, replicas=replicas, seed=seed)


def latency(
    delay: object,
    *,
    at: object,
    lasting: object,
    jitter: object = None,
    replicas: int | None = None,
    seed: int = 0,
) -> Fault:
    """``delay`` (with up to ``jitter`` more or less) on the path to the target, on connections
    already open too; to chosen ``replicas`` or to all."""
    delay_ms = parse_duration_ms(delay, "faults.latency.delay")
    jitter_ms = parse_duration_ms(jitter, "faults.latency.jitter") if jitter is not None else 0.0
    if jitter_ms > delay_ms:
        raise ConfigError("faults.latency.jitter", jitter, f"at most the delay ({delay})")
    return _fault(
        "latency",
        at=at,
        lasting=lasting,
        replicas=replicas,
        seed=seed,
        latency_ms=delay_ms,
        jitter_ms=jitter_ms or None,
    )


def loss(share: object, *, at: object, lasting: object, replicas: int | None = None) -> Fault:
    """Lose ``share`` (like ``'5%'``) of what passes on the path to the target."""
    fraction = parse_percent(share, "faults.loss.share")
    if not 0 < fraction < 1:
        raise ConfigError("faults.loss.share", share, "a share above 0% and below 100%")
    return _fault("loss", at=at, lasting=lasting, replicas=replicas, loss=fraction)


def reset_connections(*, at: object, replicas: int | None = None) -> Fault:
    """Reset every connection open to the target (or to chosen ``replicas``) at ``at``."""
    return _fault("reset", at=at, replicas=replicas)


def bandwidth(rate: object, *, at: object, lasting: object, replicas: int | None = None) -> Fault:
    """Each connection's data to the client at most ``rate`` (``'1mbit'``, ``'500kbit'``,
    ``'100KB/s'``), as a slow link would carry it."""
    return _fault("bandwidth", at=at, lasting=lasting, replicas=replicas, rate=parse_rate(rate))


def slow_close(delay: object, *, at: object, lasting: object, replicas: int | None = None) -> Fault:
    """A connection the target closes reaches the client ``delay`` later (Toxiproxy's
    slow_close): a client that waits for the close waits that long."""
    close_ms = parse_duration_ms(delay, "faults.slow_close.delay")
    return _fault("slow_close", at=at, lasting=lasting, replicas=replicas, close_ms=close_ms)


_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(kbit|mbit|gbit|KB/s|MB/s|KiB/s|MiB/s)\s*")
_RATE_UNITS = {
    "kbit": 1000 / 8,
    "mbit": 1e6 / 8,
    "gbit": 1e9 / 8,
    "KB/s": 1e3,
    "MB/s": 1e6,
    "KiB/s": 2**10,
    "MiB/s": 2**20,
}


def parse_rate(text: object, where: str = "faults.bandwidth.rate") -> float:
    """Bytes per second of ``'1mbit'`` (bits per second), ``'100KB/s'`` (bytes) and the like."""
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(where, text, "a rate like '1mbit', '500kbit' or '100KB/s'")
    rate = float(match.group(1)) * _RATE_UNITS[match.group(2)]
    if rate < 1000:
        raise ConfigError(where, text, "at least 8kbit (1KB/s)")
    return rate


def cpu(*, share: float, at: object, lasting: object, replicas: int = 1, seed: int = 0) -> Fault:
    """A hog taking ``share`` (0..1] of the replica's CPU limit, inside its cgroup."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ConfigError("faults.cpu.share", share, "a share of the CPU limit in (0, 1]")
    return _fault("cpu", at=at, lasting=lasting, replicas=replicas, seed=seed, share=float(share))


def memory(size: object, *, at: object, lasting: object, replicas: int = 1, seed: int = 0) -> Fault:
    """Memory of ``size`` (like ``'200Mi'``) held inside the replica's cgroup."""
    return _fault(
        "memory",
        at=at,
        lasting=lasting,
        replicas=replicas,
        seed=seed,
        memory=_size(size),
    )


def _size(size: object) -> int:
    found = parse_size(size, "faults.memory.size")
    if found < 2**20:
        raise ConfigError("faults.memory.size", size, "at least 1Mi")
    return found


def dependency(name: object, *, at: object, lasting: object) -> Fault:
    """The target's downstream ``name`` (the reference agent's: ``sink``) fails."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
        raise ConfigError("faults.dependency.name", name, "a downstream's name, like 'sink'")
    return _fault("dependency", at=at, lasting=lasting, target=name)


def disk_fill(
    *, share: object = 0.95, at: object, lasting: object, replicas: int = 1, seed: int = 0
) -> Fault:
    """The replica's writable path (its data folder) filled to ``share`` (0..1] of its
    filesystem, or until a write fails for want of space (``share=None``), for ``lasting``;
    then freed."""
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1
    ):
        raise ConfigError(
            "faults.disk_fill.share",
            share,
            "a share of the filesystem in (0, 1], or None: until it is full",
        )
    return _fault(
        "disk_fill",
        at=at,
        lasting=lasting,
        replicas=replicas,
        seed=seed,
        fill=1.0 if share is None else float(share),
    )


#: The most cores a neighbour may burn (a machine's worth, not a typo's).
MAX_NEIGHBOUR_CORES = 256


def neighbour(
    *,
    cpu: object = None,
    memory: object = None,
    io: object = False,
    at: object,
    lasting: object,
) -> Fault:
    """A noisy neighbour beside the replicas, outside their cgroups (a sibling cgroup of its
    own on the local backend): ``cpu`` cores burnt (default: every core of the machine),
    ``memory`` (like ``'512Mi'``) held, and with ``io=True`` direct writes and reads of the
    replicas' disk as fast as it goes, for ``lasting``. Its run gets an isolation verdict:
    the seconds under it against the seconds before it."""
    if not isinstance(io, bool):
        raise ConfigError("faults.neighbour.io", io, "True (an IO writer too) or False")
    if cpu is not None and (
        isinstance(cpu, bool)
        or not isinstance(cpu, int | float)
        or not 0 < cpu <= MAX_NEIGHBOUR_CORES
    ):
        raise ConfigError(
            "faults.neighbour.cpu", cpu, f"cores to burn in (0, {MAX_NEIGHBOUR_CORES}]"
        )
    held = None
    if memory is not None:
        held = parse_size(memory, "faults.neighbour.memory")
        if held < 2**20:
            raise ConfigError("faults.neighbour.memory", memory, "at least 1Mi")
    return _fault(
        "neighbour",
        at=at,
        lasting=lasting,
        cores=None if cpu is None else float(cpu),
        memory=held,
        io=io or None,
    )


def io(*, at: object, lasting: object, replicas: int = 1, seed: int = 0) -> Fault:
    """An IO hog inside ``replicas`` replicas' own cgroups (chosen by ``seed``): a file of
    32Mi in the replica's data folder written and read again, bypassing the page cache, as
    fast as the disk and the replica's IO limits allow (what those limits hold is the point);
    removed at the fault's end."""
    return _fault("io", at=at, lasting=lasting, replicas=replicas, seed=seed)


def slow_disk(
    rate: object = None,
    *,
    latency: object = None,
    at: object,
    lasting: object,
    replicas: int = 1,
    seed: int = 0,
) -> Fault:
    """``replicas`` replicas' disk slowed for ``lasting``: their reads and writes throttled to
    ``rate`` (like ``'1MiB/s'``; the local and Docker backends, through the blkio throttle
    on the data folder's disk, which holds direct and synced writes, not the page cache), or
    each operation on their volumes delayed by ``latency`` (like ``'50ms'``; Kubernetes,
    through Chaos Mesh's IOChaos). The replicas' own IO limits come back at its end."""
    if rate is None and latency is None:
        raise ConfigError(
            "faults.slow_disk.rate", None, "a rate like '1MiB/s', or a latency like '50ms'"
        )
    bps = None if rate is None else parse_rate(rate, "faults.slow_disk.rate")
    if bps is not None and bps < 4096:
        raise ConfigError("faults.slow_disk.rate", rate, "at least 4KiB/s (a page a second)")
    delay = None if latency is None else parse_duration_ms(latency, "faults.slow_disk.latency")
    return _fault(
        "slow_disk",
        at=at,
        lasting=lasting,
        replicas=replicas,
        seed=seed,
        bps=bps,
        delay_ms=delay,
    )


def restart(
    *, at: object, replicas: int | None = None, seed: int = 0, lasting: object = None
) -> Fault:
    """A graceful restart of every replica (or ``replicas`` of them, chosen by ``seed``) at
    once: SIGTERM (the target drains), SIGKILL after the stack's termination grace, and each
    started again at once, as a rollout replaces a pod (no crash back-off). It happens at one
    instant: ``lasting`` is refused."""
    return _fault("restart", at=at, lasting=lasting, replicas=replicas, seed=seed)


def rolling_restart(
    *, at: object, max_unavailable: int = 1, seed: int = 0, lasting: object = None
) -> Fault:
    """Every replica restarted as ``restart`` does, ``max_unavailable`` at a time: the next
    once the last one's replacement is ready (``kubectl rollout restart`` with maxSurge 0).
    An instant fault whose effect spans time: it ends when the last replacement is ready (or
    when one is not ready in time, and the rollout stops). ``seed`` orders the replicas."""
    if lasting is not None:
        raise ConfigError(
            "faults.rolling_restart.lasting",
            lasting,
            "none: a rolling restart lasts until every replica was restarted",
        )
    if (
        isinstance(max_unavailable, bool)
        or not isinstance(max_unavailable, int)
        or max_unavailable < 1
    ):
        raise ConfigError(
            "faults.rolling_restart.max_unavailable",
            max_unavailable,
            "a whole number of replicas down at once, 1 or more",
        )
    return _fault("rolling_restart", at=at, seed=seed, max_unavailable=max_unavailable)


def check_faults(faults: Sequence[Fault], active_ms: float) -> tuple[Fault, ...]:
    """The faults named (``kill``, ``kill-2``, ...) and checked against the load's timeline:
    each must start, and end, while the load runs (``active_ms``)."""
    named: list[Fault] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(faults):
        if not isinstance(item, Fault):
            raise ConfigError(f"faults[{i}]", item, "a fault from stressbed.fault")
        seen[item.kind] = seen.get(item.kind, 0) + 1
        name = item.kind if seen[item.kind] == 1 else f"{item.kind}-{seen[item.kind]}"
        if item.end_ms > active_ms or item.at_ms >= active_ms:
            raise ConfigError(
                f"faults.{name}",
                item.label,
                f"a fault within the load's {format_duration(active_ms)}",
            )
        named.append(replace(item, name=name))
    return tuple(named)
