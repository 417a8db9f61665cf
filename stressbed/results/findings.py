"""Findings: what the merged data and the stack's timeline point at, each with the second it
starts and its evidence. They go into summary.json (``findings``) and top the report.

Each kind is one rule over the :class:`~.timeline.Timeline` (and the run's events):

- ``latency-step-at-cpu-limit``: p95 latency steps up (to at least twice its early level, for
  3 steps running) while a replica runs at 90% or more of its CPU limit;
- ``errors-with-stack-event``: an error burst (5% of requests or more failing in a step) within
  5 s of a restart, a crash, an OOM kill, a liveness or startup failure or a readiness flap;
- ``autoscaler-at-max``: the autoscaler wants its maximum replicas while a threshold is breached;
- ``quota-denied``: the quota refused a replica the stack wanted (a scale-up that never came);
- ``load-not-offered``: more than 1% of the iterations asked for were dropped (the executor ran
  out of VUs: the target rate was not offered, so latency looks better than it is);
- ``runner-cpu``: a runner's k6 above 90% of the CPU it may use for 5 s or more (the load
  generator, not the target, may be the limit);
- ``cpu-throttled``: p95 latency steps up (as above) while a replica's cgroup was throttled
  in half its CFS periods or more: its CPU limit, not the work, holds it back;
- ``pids-exhausted``: a replica's cgroup refused it new processes or threads at its pids
  limit (the kernel's ``pids.events``): a fork or a thread start failed inside it;
- ``cpu-contended``: p95 latency steps up (as above) while a replica's threads waited for a
  CPU (the kernel's run-queue delay) 50 ms a second or more, three times their early wait or
  more, and its quota did not throttle it: other work on the machine held its cores (a
  noisy neighbour, the load generator beside it);
- ``io-throttled``: p95 latency steps up (as above) while a replica's reads or its writes ran
  at 80% or more of their lowest bytes-per-second throttle (its own IO limit, or a
  ``slow_disk``'s): the disk it may use, not the work, holds it back;
- ``disk-full``: the replicas' data folder had no room left (under 1% of it, or 1 MiB,
  free): writes there fail with ENOSPC, from then until it had room again;
- ``connections-not-rebalanced``: a replica that became ready during the load (a scale-out)
  held under half its fair share of the open connections (all of them over the replicas
  holding any count) from then until the end, 30 s or more: long-lived connections stay where
  they opened, as an L4 balancer (a Service) balances connections, not requests.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..scenario.thresholds import Threshold
from .timeline import Series, Timeline, breaches

__all__ = ["Finding", "findings"]

STEP_FACTOR = 2.0  # a latency step: p95 at least this many times its early level
STEP_POINTS = 3  # ... for this many points running
CPU_LIMIT_SHARE = 0.9
#: A replica throttled in this share of its CFS periods or more is held back by its limit.
THROTTLED_SHARE = 0.5
#: A replica whose threads wait this long for a CPU each second (seconds a second) or more...
CONTENDED_WAIT = 0.05
#: ... this many times their early wait or more, is held back by other work on its cores.
CONTENDED_FACTOR = 3.0
#: A replica whose IO runs at this share of its throttle or more is held back by it.
IO_LIMIT_SHARE = 0.8
#: A data folder with less free than this share of it (or than DISK_FULL_MIB) is full.
DISK_FULL_SHARE = 0.01
DISK_FULL_MIB = 1.0
BURST_RATE = 0.05
BURST_MIN_FAILED = 3
NEAR_S = 5.0
DROPPED_SHARE = 0.01
RUNNER_CPU_SHARE = 0.9
RUNNER_CPU_S = 5.0
#: A newcomer holding under this share of its fair share of the connections...
REBALANCE_SHARE = 0.5
#: ... from when it became ready until the end, this long at least...
REBALANCE_S = 30.0
#: ... judged only where a fair share is at least this many connections (fewer is noise).
REBALANCE_MIN_FAIR = 4.0
STACK_TROUBLE = {
    "restarted",
    "crashed",
    "oom-killed",
    "liveness-failed",
    "startup-failed",
    "unready",
    "killed",
}


@dataclass(frozen=True)
class Finding:
    kind: str
    t: float  # seconds since the start
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "t": round(self.t, 3),
            "message": self.message,
            "evidence": self.evidence,
        }


def findings(
    line: Timeline,
    thresholds: Sequence[tuple[Threshold, bool]] = (),
    events: Sequence[Mapping[str, Any]] = (),
    *,
    max_replicas: int | None = None,
    runner_capacity: Sequence[float | None] = (),
) -> list[Finding]:
    """Every finding of a run, in the order they start. ``thresholds`` pairs each threshold
    with whether it passed; ``runner_capacity`` is the cores each runner's k6 may use."""
    found = [
        *_latency_step(line),
        *_errors_with_events(line, events),
        *_autoscaler_at_max(line, thresholds, max_replicas),
        *_quota_denied(line, events),
        *_load_not_offered(line),
        *_runner_cpu(line, runner_capacity),
        *_connections_not_rebalanced(line, events),
        *_cpu_throttled(line),
        *_cpu_contended(line),
        *_io_throttled(line),
        *_pids_exhausted(line),
        *_disk_full(line),
    ]
    return sorted(found, key=lambda f: (f.t, f.kind))


def _step_start(line: Timeline) -> tuple[float, list[int]] | None:
    """p95's early level, and the first point of each run of STEP_POINTS at STEP_FACTOR
    times it or more; None with too few points."""
    p95 = line.fleet.get("p95_ms", [])
    known = [v for v in p95 if v is not None]
    if len(known) < 2 * STEP_POINTS:
        return None
    early = statistics.median(known[: max(STEP_POINTS, len(known) // 5)])
    if early <= 0:
        return None
    starts, run = [], 0
    for i, value in enumerate(p95):
        run = run + 1 if value is not None and value >= STEP_FACTOR * early else 0
        if run == STEP_POINTS:
            starts.append(i - STEP_POINTS + 1)
    return early, starts


#: What a replica's lanes say of a latency step between two points (inclusive): why, in words
#: (after "while"), and the evidence; None: not this replica.
_Why = Callable[[str, Mapping[str, Series], int, int], tuple[str, dict[str, Any]] | None]


def _step_explained(line: Timeline, kind: str, why: _Why) -> list[Finding]:
    """The first latency step a replica's lanes explain by ``why`` (from two points before
    its start to its last point), as a finding of ``kind``."""
    found = _step_start(line)
    if found is None:
        return []
    early, starts = found
    p95 = line.fleet["p95_ms"]
    for first in starts:
        lo, hi = max(0, first - 2), min(len(line.t) - 1, first + STEP_POINTS - 1)
        for name, lanes in line.pods.items():
            said = why(name, lanes, lo, hi)
            if said is not None:
                text, evidence = said
                return [
                    Finding(
                        kind,
                        line.t[first],
                        f"p95 latency rose from {early:.0f} ms to {p95[first]:.0f} ms while "
                        + text,
                        {"p95_before_ms": early, "p95_ms": p95[first], "replica": name} | evidence,
                    )
                ]
    return []


def _cpu_throttled(line: Timeline) -> list[Finding]:
    def why(
        name: str, lanes: Mapping[str, Series], lo: int, hi: int
    ) -> tuple[str, dict[str, Any]] | None:
        shares = [v for v in lanes.get("throttled_share", [])[lo : hi + 1] if v is not None]
        if not shares or max(shares) < THROTTLED_SHARE:
            return None
        return (
            f"{name}'s cgroup was throttled in {max(shares):.0%} of its CPU periods: its CPU "
            "limit holds it back",
            {"throttled_share": max(shares)},
        )

    return _step_explained(line, "cpu-throttled", why)


def _cpu_contended(line: Timeline) -> list[Finding]:
    def why(
        name: str, lanes: Mapping[str, Series], lo: int, hi: int
    ) -> tuple[str, dict[str, Any]] | None:
        waits = lanes.get("cpu_wait", [])
        known = [v for v in waits[:lo] if v is not None]
        if not known:
            return None  # no wait before the step to compare with: not judged
        before = statistics.median(known[: max(STEP_POINTS, len(known) // 5)])
        throttled = [v for v in lanes.get("throttled_share", [])[lo : hi + 1] if v]
        if throttled and max(throttled) >= THROTTLED_SHARE:
            return None  # its own quota: cpu-throttled says so
        wait = max((v for v in waits[lo : hi + 1] if v is not None), default=0.0)
        if wait < CONTENDED_WAIT or wait < CONTENDED_FACTOR * before:
            return None
        return (
            f"{name}'s threads waited {wait * 1000:.0f} ms a second for a CPU "
            f"({before * 1000:.0f} ms before), its quota not throttling it: other work on the "
            "machine held its cores",
            {"cpu_wait_s_per_s": wait, "cpu_wait_before_s_per_s": before},
        )

    return _step_explained(line, "cpu-contended", why)


def _io_throttled(line: Timeline) -> list[Finding]:
    def why(
        name: str, lanes: Mapping[str, Series], lo: int, hi: int
    ) -> tuple[str, dict[str, Any]] | None:
        for way, done in (("read", "read"), ("write", "wrote")):
            pairs = zip(
                lanes.get(f"io_{way}_mib_s", [])[lo : hi + 1],
                lanes.get(f"io_{way}_limit_mib_s", [])[lo : hi + 1],
                strict=False,
            )
            held = sorted(
                (r, m) for r, m in pairs if r is not None and m and r >= IO_LIMIT_SHARE * m
            )
            if held:
                rate, limit = held[len(held) // 2]  # the middle reading at the limit
                return (
                    f"{name} {done} {rate:g} MiB/s, at its {limit:g} MiB/s {way} limit: the "
                    "disk it may use holds it back",
                    {"direction": way, "io_mib_s": rate, "io_limit_mib_s": limit},
                )
        return None

    return _step_explained(line, "io-throttled", why)


def _disk_full(line: Timeline) -> list[Finding]:
    free, size = line.stack.get("data_free_mib", []), line.stack.get("data_size_mib", [])
    full = {
        i
        for i, (f, s) in enumerate(zip(free, size, strict=False))
        if f is not None and s and f <= max(DISK_FULL_MIB, DISK_FULL_SHARE * s)
    }
    if not full:
        return []
    first = min(full)
    # The first point with room again after it (None: full until the end).
    room = next((i for i in range(first, len(line.t)) if i not in full), None)
    until = line.t[room] if room is not None else None
    span = range(first, room if room is not None else len(line.t))
    requests, failed = line.fleet.get("requests_per_s", []), line.fleet.get("failed_per_s", [])
    sent = sum(requests[i] or 0.0 for i in span if i < len(requests))
    bad = sum(failed[i] or 0.0 for i in span if i < len(failed))
    errors = f"; {bad / sent:.1%} of the requests meanwhile failed" if sent and bad else ""
    lasted = f" from {line.t[first]:g} s to {until:g} s" if until is not None else " to the end"
    return [
        Finding(
            "disk-full",
            line.t[first],
            f"the replicas' data folder was full ({free[first]:g} MiB free of "
            f"{size[first]:g} MiB){lasted}: writes there fail for want of space{errors}",
            {"free_mib": free[first], "size_mib": size[first], "until_s": until},
        )
    ]


def _pids_exhausted(line: Timeline) -> list[Finding]:
    found = []
    for name, lanes in line.pods.items():
        refused = lanes.get("pids_refused", [])
        known = [(i, v) for i, v in enumerate(refused) if v is not None]
        if not known:
            continue
        base = known[0][1]
        rose = next(((i, v) for i, v in known if v > base), None)
        if rose is None:
            continue
        i, count = rose
        most = max((v for v in lanes.get("pids", []) if v is not None), default=None)
        shown = f" (it held {most:.0f})" if most is not None else ""
        found.append(
            Finding(
                "pids-exhausted",
                line.t[i],
                f"{name} reached its process limit{shown}: the kernel refused it "
                f"{count - base:.0f} new processes or threads",
                {"replica": name, "refused": count - base, "pids": most},
            )
        )
    return found


def _latency_step(line: Timeline) -> list[Finding]:
    p95 = line.fleet.get("p95_ms", [])
    known = [v for v in p95 if v is not None]
    if len(known) < 2 * STEP_POINTS:
        return []
    early = statistics.median(known[: max(STEP_POINTS, len(known) // 5)])
    if early <= 0:
        return []
    run = 0
    for i, value in enumerate(p95):
        run = run + 1 if value is not None and value >= STEP_FACTOR * early else 0
        if run < STEP_POINTS:
            continue
        first = i - STEP_POINTS + 1
        hot = _pods_at_cpu_limit(line, first, i)
        if not hot:
            continue  # a step the CPU does not explain (a GC pause, a warm-up): look on
        name, used = hot
        limit = line.limits["cpu_m"]
        return [
            Finding(
                "latency-step-at-cpu-limit",
                line.t[first],
                f"p95 latency rose from {early:.0f} ms to {p95[first]:.0f} ms while {name} ran "
                f"at {used:.0f}m of its {limit:.0f}m CPU limit: the replicas are CPU-bound",
                {"p95_before_ms": early, "p95_ms": p95[first], "replica": name, "cpu_m": used},
            )
        ]
    return []


def _pods_at_cpu_limit(line: Timeline, first: int, last: int) -> tuple[str, float] | None:
    limit = line.limits.get("cpu_m")
    if not limit:
        return None
    lo, hi = max(0, first - 2), min(len(line.t) - 1, last)
    best: tuple[str, float] | None = None
    for name, lanes in line.pods.items():
        for value in lanes["cpu_m"][lo : hi + 1]:
            if (
                value is not None
                and value >= CPU_LIMIT_SHARE * limit
                and (best is None or value > best[1])
            ):
                best = (name, value)
    return best


def _errors_with_events(line: Timeline, events: Sequence[Mapping[str, Any]]) -> list[Finding]:
    trouble = [
        (float(e["t"]) - line.start, e)
        for e in events
        if e.get("event") in STACK_TROUBLE and isinstance(e.get("t"), int | float)
    ]
    if not trouble:
        return []
    out: list[Finding] = []
    requests = line.fleet.get("requests_per_s", [])
    failed = line.fleet.get("failed_per_s", [])
    in_burst = False
    for i, t in enumerate(line.t):
        total, bad = (requests[i] or 0.0) * line.step, (failed[i] or 0.0) * line.step
        burst = bad >= BURST_MIN_FAILED and total and bad / total >= BURST_RATE
        if burst and not in_burst:
            near = [(at, e) for at, e in trouble if abs(at - t) <= NEAR_S + line.step]
            if near:
                at, event = min(near, key=lambda pair: abs(pair[0] - t))
                what = f"{event.get('event')} of {event.get('replica', 'a replica')}"
                out.append(
                    Finding(
                        "errors-with-stack-event",
                        t,
                        f"{bad:.0f} of {total:.0f} requests failed at {t:.0f} s, "
                        f"{abs(at - t):.1f} s from the {what}",
                        {"failed": bad, "requests": total, "event": dict(event)},
                    )
                )
        in_burst = bool(burst)
    return out


def _autoscaler_at_max(
    line: Timeline, thresholds: Sequence[tuple[Threshold, bool]], max_replicas: int | None
) -> list[Finding]:
    desired = line.stack.get("desired", [])
    if not max_replicas or not desired:
        return []
    for threshold, ok in thresholds:
        if ok:
            continue
        for left, right in breaches(line, threshold):
            for i, t in enumerate(line.t):
                wanted = desired[i]
                if left <= t < right and wanted is not None and wanted >= max_replicas:
                    return [
                        Finding(
                            "autoscaler-at-max",
                            t,
                            f"the autoscaler wanted its maximum of {max_replicas} replicas "
                            f"while {threshold.key} {threshold.expression} was breached: "
                            "raise max_replicas or the replicas' limits",
                            {"max_replicas": max_replicas, "threshold": threshold.key},
                        )
                    ]
    return []


def _quota_denied(line: Timeline, events: Sequence[Mapping[str, Any]]) -> list[Finding]:
    out = []
    for event in events:
        if event.get("event") != "quota-denied" or not isinstance(event.get("t"), int | float):
            continue
        out.append(
            Finding(
                "quota-denied",
                max(0.0, float(event["t"]) - line.start),
                f"the quota refused a replica ({event.get('reason', 'no reason')}); the stack "
                f"wanted {event.get('wanted', '?')}",
                {"reason": event.get("reason"), "wanted": event.get("wanted")},
            )
        )
    return out


def _load_not_offered(line: Timeline) -> list[Finding]:
    dropped = line.fleet.get("dropped_per_s", [])
    offered = line.fleet.get("offered_per_s", [])
    total_dropped = sum(v or 0.0 for v in dropped)
    total_offered = sum(v or 0.0 for v in offered)
    if not total_offered or total_dropped / total_offered <= DROPPED_SHARE:
        return []
    first = next(i for i, v in enumerate(dropped) if v)
    share = total_dropped / total_offered
    return [
        Finding(
            "load-not-offered",
            line.t[first],
            f"{share:.1%} of the iterations asked for were dropped "
            f"({total_dropped * line.step:.0f} of {total_offered * line.step:.0f}): the executor "
            "ran out of VUs, so the target rate was not offered (raise max_vus, or the target "
            "is too slow for the VUs given)",
            {"dropped": total_dropped * line.step, "offered": total_offered * line.step},
        )
    ]


def _runner_cpu(line: Timeline, capacity: Sequence[float | None]) -> list[Finding]:
    out = []
    need = max(1, round(RUNNER_CPU_S / line.step))
    for index, lanes in enumerate(line.runners):
        cores = capacity[index] if index < len(capacity) else None
        if not cores:
            continue
        run = 0
        for i, used in enumerate(lanes["cpu_cores"]):
            run = run + 1 if used is not None and used >= RUNNER_CPU_SHARE * cores else 0
            if run == need:
                first = i - need + 1
                out.append(
                    Finding(
                        "runner-cpu",
                        line.t[first],
                        f"runner {index} used {used:.2f} of its {cores:g} cores for "
                        f"{need * line.step} s or more: the load generator may be the limit "
                        "(add runners, or give them more CPU)",
                        {"runner": index, "cores_used": used, "cores": cores},
                    )
                )
                break
    return out


def _connections_not_rebalanced(
    line: Timeline, events: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    lanes = {
        name: pod["connections"]
        for name, pod in line.pods.items()
        if any(v is not None for v in pod.get("connections", ()))
    }
    if len(lanes) < 2:
        return []
    ready_at: dict[str, float] = {}  # each replica's first "ready", seconds since the start
    for event in events:
        name, t = event.get("replica"), event.get("t")
        if event.get("event") == "ready" and name in lanes and isinstance(t, int | float):
            ready_at[str(name)] = min(ready_at.get(str(name), math.inf), float(t) - line.start)
    stuck: list[tuple[str, float, dict[str, float]]] = []
    for name, ready in sorted(ready_at.items(), key=lambda pair: pair[1]):
        if ready < 0:
            continue  # ready before the load: not a scale-out
        held = _held_under_fair_share(line, lanes, name, ready)
        if held is not None:
            stuck.append((name, ready, held))
    if not stuck:
        return []
    _, ready, first = stuck[0]
    names = ", ".join(name for name, _, _ in stuck)
    return [
        Finding(
            "connections-not-rebalanced",
            ready,
            f"{names} became ready at {ready:.0f} s, after the load began, but held "
            f"{first['connections']:.0f} of {first['total']:.0f} open connections (a fair share: "
            f"{first['fair_share']:.0f}) from then to the end ({first['seconds']:.0f} s): the "
            "balancer, as a Kubernetes Service, balances connections, not requests, so "
            "long-lived connections (WebSockets, keep-alive) stay on the replicas they opened "
            "on and a scale-out takes none of their load. Give connections a maximum age (the "
            "server closes or drains them after a while, or when replicas are added) so "
            "clients reconnect and spread, rebalance on the client side, or balance per request "
            "or stream with an L7 balancer",
            {"replicas": [{"replica": n, "ready_s": round(r, 1), **h} for n, r, h in stuck]},
        )
    ]


def _held_under_fair_share(
    line: Timeline, lanes: Mapping[str, Sequence[float | None]], name: str, ready: float
) -> dict[str, float] | None:
    """What ``name`` held at the last step judged, if it held under REBALANCE_SHARE of its
    fair share at every step judged from ``ready`` to the end, REBALANCE_S or more of them;
    else None."""
    seconds, last = 0.0, None
    for i, t in enumerate(line.t):
        mine = lanes[name][i]
        if t < ready or mine is None:
            continue
        held = [lane[i] for lane in lanes.values() if lane[i] is not None]
        total = sum(v for v in held if v is not None)
        fair = total / len(held)
        if fair < REBALANCE_MIN_FAIR:
            continue  # too few connections to judge (the run's start or end)
        if mine >= REBALANCE_SHARE * fair:
            return None
        seconds += line.covers[i] if i < len(line.covers) else line.step
        last = {"connections": mine, "total": total, "fair_share": round(fair, 1)}
    if last is None or seconds < REBALANCE_S:
        return None
    return {**last, "seconds": seconds}
