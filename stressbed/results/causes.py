"""Why the capacity is where it is: the binding cause, read from the stack's timeline.

Client-side figures say *that* a probe failed; the stack's samples and events during it say
*why*. :func:`binding_cause` looks at the first failing probe (and the last one that held, for
contrast) and names, with its evidence:

- ``oom-killed``: a replica was OOM-killed during the probe;
- ``quota-denied``: the quota refused a replica the autoscaler wanted;
- ``autoscaler-at-max``: the autoscaler wanted its maximum replicas (and, where they were, the
  replicas at their CPU limit);
- ``probe-restarts``: replicas restarted, failed their liveness or startup probe, or dropped
  out of readiness: the probes took capacity away;
- ``cpu-limit``: a replica ran at 90% or more of its CPU limit (or was throttled);
- ``memory-limit``: a replica's working set reached 90% of its memory limit;
- ``backpressure``: most failures were 429 or 503 while latency stayed flat: the target sheds
  load on purpose;
- ``saturation``: no stack signal, but the client saw it: the achieved rate fell short of the
  offered one, latency kept growing, or the median request took far longer than at the
  highest rate that held, while errors stayed low: requests queue in front of a
  fixed service rate (a worker, connection or concurrency limit the stack does not report);
- ``none``: nothing the stack recorded explains it (with a client-only target: no stack to
  read; give its metrics URL).

For a population's probe (``population=True``: its figures are agents, not a rate),
backpressure and saturation do not apply; after the replicas taken out of service come the
target's own ``connection-limit`` and ``open-files`` (:mod:`.agent_causes`), then CPU and
memory.

The first that applies, in that order, is the binding cause; the others found are kept as
``also``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .agent_causes import connection_limit, open_files
from .probe import Probe

__all__ = ["binding_cause"]

CPU_LIMIT_SHARE = 0.9
MEMORY_LIMIT_SHARE = 0.9
THROTTLED_SHARE = 0.1
BACKPRESSURE_STATUSES = ("429", "503")
BACKPRESSURE_SHARE = 0.5
FLAT_LATENCY = 1.5  # p50 at most this many times the last held probe's: "flat"
SATURATED_SHARE = 0.98  # achieved under this share of the offered rate: saturated
BACKPRESSURE_ERRORS = 0.05  # ... with fewer errors than this (else the target fails, not queues)
#: A population's agents close their channels within this long after its step.
CLOSING_S = 5.0
RESTART_EVENTS = ("restarted", "liveness-failed", "startup-failed", "unready", "killed", "crashed")


def binding_cause(
    failed: Probe | None,
    held: Probe | None,
    *,
    events: Sequence[Mapping[str, Any]] = (),
    rows: Sequence[Mapping[str, Any]] = (),
    limits: Mapping[str, float] | None = None,
    max_replicas: int | None = None,
    has_stack: bool = True,
    population: bool = False,
    target: Mapping[str, Sequence[Sequence[float]]] | None = None,
) -> dict[str, Any] | None:
    """The cause at the first failing probe ``failed`` (``held``: the highest that held);
    ``events`` and ``rows`` are the stack's during ``failed``, ``target`` the target's own
    scraped series (read for a ``population``). None without a failure."""
    if failed is None:
        return None
    limits = limits or {}
    stack = (
        _oom(events, limits),
        _quota(events),
        _at_max(failed, max_replicas, limits),
        _restarts(events),
    )
    if population:
        # The probe from the second before its release (a counter's rate is keyed by the
        # second its interval began) to its join, its step and its agents' goodbyes.
        start = failed.started_at or 0.0
        begin = start - 1
        end = start + (failed.figure("join_s") or 0.0) + failed.setup.step_s + CLOSING_S
        client: tuple[dict[str, Any] | None, ...] = (
            connection_limit(failed, target or {}, begin, end),
            open_files(failed),
            _cpu(failed, rows, limits),
            _memory(failed, limits),
        )
    else:
        client = (
            _cpu(failed, rows, limits),
            _memory(failed, limits),
            _backpressure(failed, held),
            _saturation(failed, held),
        )
    found = [c for c in (*stack, *client) if c is not None]
    if not found:
        message = (
            "none found in the stack's samples and events"
            if has_stack
            else "none found: an existing target has no stack to read (give "
            "--target-metrics-url for its own metrics)"
        )
        return {"kind": "none", "message": message, "evidence": {}, "also": []}
    first, *rest = found
    return {**first, "also": [{"kind": c["kind"], "message": c["message"]} for c in rest]}


def _cause(kind: str, message: str, **evidence: Any) -> dict[str, Any]:
    return {"kind": kind, "message": message, "evidence": evidence}


def _oom(events: Sequence[Mapping[str, Any]], limits: Mapping[str, float]) -> dict[str, Any] | None:
    killed = [e for e in events if e.get("event") == "oom-killed"]
    if not killed:
        return None
    limit = limits.get("memory_mib")
    within = f" (memory limit {limit:,.0f} MiB)" if limit else ""
    names = sorted({str(e.get("replica", "?")) for e in killed})
    return _cause(
        "oom-killed",
        f"agent replicas OOM-killed{within}: {', '.join(names)}",
        events=[dict(e) for e in killed],
    )


def _quota(events: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    denied = [e for e in events if e.get("event") == "quota-denied"]
    if not denied:
        return None
    return _cause(
        "quota-denied",
        f"the quota refused a scale-up ({denied[0].get('reason', 'no reason given')})",
        events=[dict(e) for e in denied],
    )


def _at_max(
    failed: Probe, max_replicas: int | None, limits: Mapping[str, float]
) -> dict[str, Any] | None:
    wanted = failed.figure("desired_max")
    if not max_replicas or wanted is None or wanted < max_replicas:
        return None
    hot = _hot_pods(failed, limits)
    tail = f", with replicas at their CPU limit ({_pods_text(hot, limits)})" if hot else ""
    return _cause(
        "autoscaler-at-max",
        f"the autoscaler at its max_replicas ({max_replicas}){tail}",
        desired=wanted,
        max_replicas=max_replicas,
        pods=failed.figures.get("pods"),
    )


def _restarts(events: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    trouble = [e for e in events if e.get("event") in RESTART_EVENTS]
    if not trouble:
        return None
    kinds = sorted({str(e["event"]) for e in trouble})
    return _cause(
        "probe-restarts",
        f"replicas taken out of service during the probe ({', '.join(kinds)}): the probes "
        "removed capacity under load",
        events=[dict(e) for e in trouble],
    )


def _hot_pods(probe: Probe, limits: Mapping[str, float]) -> dict[str, float]:
    limit = limits.get("cpu_m")
    pods = probe.figures.get("pods") or {}
    hot = {}
    for name, usage in pods.items():
        used = usage.get("cpu_m")
        throttled = usage.get("throttled_share") or 0.0
        if (limit and used is not None and used >= CPU_LIMIT_SHARE * limit) or (
            throttled >= THROTTLED_SHARE
        ):
            hot[name] = used if used is not None else 0.0
    return hot


def _pods_text(hot: Mapping[str, float], limits: Mapping[str, float]) -> str:
    limit = limits.get("cpu_m")
    used = statistics.median(hot.values())
    return f"{used:,.0f}m of {limit:,.0f}m" if limit else f"{used:,.0f}m"


def _cpu(
    failed: Probe, rows: Sequence[Mapping[str, Any]], limits: Mapping[str, float]
) -> dict[str, Any] | None:
    hot = _hot_pods(failed, limits)
    if not hot:
        return None
    series = {
        name: [
            [row["t"], row["pods"][name].get("cpu_m")]
            for row in rows
            if name in (row.get("pods") or {})
        ]
        for name in sorted(hot)
    }
    return _cause(
        "cpu-limit",
        f"agent replicas at their CPU limit ({_pods_text(hot, limits)})",
        cpu_m=dict(hot),
        limit_m=limits.get("cpu_m"),
        series=series,
    )


def _memory(failed: Probe, limits: Mapping[str, float]) -> dict[str, Any] | None:
    limit = limits.get("memory_mib")
    pods = failed.figures.get("pods") or {}
    if not limit:
        return None
    near = {
        name: usage["memory_mib"]
        for name, usage in pods.items()
        if usage.get("memory_mib") is not None and usage["memory_mib"] >= MEMORY_LIMIT_SHARE * limit
    }
    if not near:
        return None
    peak = max(near.values())
    return _cause(
        "memory-limit",
        f"agent replicas near their memory limit ({peak:,.0f} of {limit:,.0f} MiB)",
        memory_mib=near,
        limit_mib=limit,
    )


def _backpressure(failed: Probe, held: Probe | None) -> dict[str, Any] | None:
    statuses: Mapping[str, int] = failed.figures.get("statuses") or {}
    total = sum(statuses.values())
    shed = sum(statuses.get(s, 0) for s in BACKPRESSURE_STATUSES)
    if not total or shed / total < BACKPRESSURE_SHARE:
        return None
    now, before = failed.figure("p50_ms"), held.figure("p50_ms") if held else None
    if now is not None and before is not None and now > FLAT_LATENCY * max(before, 1.0):
        return None  # latency rose with it: overload, not a deliberate shedding of load
    codes = "/".join(s for s in BACKPRESSURE_STATUSES if statuses.get(s))
    return _cause(
        "backpressure",
        f"the target sheds load: {shed / total:.0%} of failures were {codes} while p50 "
        f"stayed at {now or 0:,.1f} ms",
        statuses=dict(statuses),
        p50_ms=now,
        p50_held_ms=before,
        error_rate=failed.figure("error_rate"),
    )


def _saturation(failed: Probe, held: Probe | None) -> dict[str, Any] | None:
    achieved, offered = failed.figure("achieved_per_s"), failed.figure("offered_per_s")
    short = achieved is not None and offered and achieved < SATURATED_SHARE * offered
    growing = not failed.conditions.get("latency_trend", True) or not failed.conditions.get(
        "vus_active_trend", True
    )
    before = held.figure("p50_ms") if held else None
    now = failed.figure("p50_ms")
    # The median request waiting far longer than at the highest rate that held: a queue.
    slower = before is not None and now is not None and now > FLAT_LATENCY * max(before, 1.0)
    errors = failed.figure("error_rate") or 0.0
    if not (short or growing or slower) or errors >= BACKPRESSURE_ERRORS:
        return None
    rose = (
        f" while p50 rose from {before:,.1f} to {now:,.1f} ms"
        if before is not None and now is not None
        else ""
    )
    return _cause(
        "saturation",
        f"the target's throughput saturated at {achieved or 0:,.1f}/s of {offered or 0:,.0f}/s "
        f"offered{rose}: requests queue in front of a fixed service rate (a worker, connection "
        "or concurrency limit)",
        achieved_per_s=achieved,
        offered_per_s=offered,
        p50_ms=now,
        p50_held_ms=before,
    )
